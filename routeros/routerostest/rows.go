package routerostest

import (
	"fmt"
	"strconv"
	"time"

	"github.com/nettportal/nettportal/routeros"
)

// rowsLocked renders a menu the way RouterOS 7 prints it over the API.
func (s *Server) rowsLocked(menu string) []row {
	switch menu {
	case "/ppp/active":
		rows := make([]row, 0, len(s.sessions))
		for _, e := range s.sessions {
			rows = append(rows, activeRow(e))
		}
		return rows
	case "/ppp/secret":
		return s.secretRowsLocked()
	case "/interface":
		return s.interfaceRowsLocked()
	case "/system/identity":
		name := s.Identity
		if name == "" {
			name = "MikroTik"
		}
		return []row{{{"name", name}}}
	case "/system/resource":
		return []row{s.resourceRowLocked()}
	}
	return nil
}

func boolStr(b bool) string { return strconv.FormatBool(b) }

func activeRow(e *sessionEntry) row {
	svc := e.s.Service
	if svc == "" {
		svc = "pppoe"
	}
	return row{
		{".id", e.id},
		{"name", e.s.Name},
		{"service", svc},
		{"caller-id", e.s.CallerID},
		{"address", e.s.Address},
		{"uptime", routeros.FormatUptime(e.s.Uptime)},
		{"encoding", e.s.Encoding},
		{"session-id", fmt.Sprintf("0x%08x", e.s.SessionID)},
		{"radius", boolStr(e.s.Radius)},
	}
}

func (s *Server) secretRowsLocked() []row {
	rows := make([]row, 0, len(s.secrets))
	named := make(map[string]bool, len(s.secrets))
	add := func(id string, sec Secret) {
		svc := sec.Service
		if svc == "" {
			svc = "any"
		}
		profile := sec.Profile
		if profile == "" {
			profile = "default"
		}
		rows = append(rows, row{
			{".id", id},
			{"name", sec.Name},
			{"service", svc},
			{"caller-id", ""},
			{"password", sec.Password},
			{"profile", profile},
			{"routes", ""},
			{"limit-bytes-in", "0"},
			{"limit-bytes-out", "0"},
			{"disabled", "false"},
		})
	}
	for _, e := range s.secrets {
		named[e.s.Name] = true
		add(e.id, e.s)
	}
	// Local-secret sessions imply a secret, as on a router without RADIUS.
	for _, e := range s.sessions {
		if e.s.Radius || e.s.Profile == "" || named[e.s.Name] {
			continue
		}
		named[e.s.Name] = true
		add(e.secretID, Secret{Name: e.s.Name, Profile: e.s.Profile, Service: "pppoe"})
	}
	return rows
}

// packets approximates a packet count from bytes, since sessions only
// carry byte counters; clients only need a plausible monotonic number.
func packets(b uint64) uint64 { return (b + 999) / 1000 }

func (s *Server) interfaceRowsLocked() []row {
	var rx, tx uint64
	for _, e := range s.sessions {
		rx += e.s.RxBytes
		tx += e.s.TxBytes
	}
	// ether1 faces the subscribers here: what they upload arrives on it.
	rows := []row{
		staticIface("*1", "ether1", "ether", "1500", "48:8F:5A:00:00:01", rx, tx),
		staticIface("*2", "ether2", "ether", "1500", "48:8F:5A:00:00:02", tx, rx),
	}
	for _, e := range s.sessions {
		rows = append(rows, append(row{
			{".id", e.ifaceID},
			{"name", "<pppoe-" + e.s.Name + ">"},
			{"type", "pppoe-in"},
			{"mtu", "1480"},
			{"actual-mtu", "1480"},
		}, ifaceCounters(e.s.RxBytes, e.s.TxBytes, true)...))
	}
	return rows
}

func staticIface(id, name, typ, mtu, mac string, rx, tx uint64) row {
	return append(row{
		{".id", id},
		{"name", name},
		{"default-name", name},
		{"type", typ},
		{"mtu", mtu},
		{"actual-mtu", mtu},
		{"l2mtu", "1568"},
		{"max-l2mtu", "9796"},
		{"mac-address", mac},
	}, ifaceCounters(rx, tx, false)...)
}

// ifaceCounters are the fields an /interface row ends with, a PPPoE
// session's (dynamic) and a port's alike: its counters and its state.
func ifaceCounters(rx, tx uint64, dynamic bool) row {
	return row{
		{"rx-byte", strconv.FormatUint(rx, 10)},
		{"tx-byte", strconv.FormatUint(tx, 10)},
		{"rx-packet", strconv.FormatUint(packets(rx), 10)},
		{"tx-packet", strconv.FormatUint(packets(tx), 10)},
		{"rx-drop", "0"},
		{"tx-drop", "0"},
		{"tx-queue-drop", "0"},
		{"rx-error", "0"},
		{"tx-error", "0"},
		{"link-downs", "0"},
		{"running", "true"},
		{"disabled", "false"},
		{"dynamic", strconv.FormatBool(dynamic)},
	}
}

func (s *Server) resourceRowLocked() row {
	version := s.Version
	if version == "" {
		version = "7.16 (stable)"
	}
	// A loaded concentrator shows some CPU; keep it a function of the
	// session count so it is deterministic.
	load := min(len(s.sessions)/50, 100)
	return row{
		{"uptime", routeros.FormatUptime(time.Since(s.BootTime))},
		{"version", version},
		{"build-time", "2024-09-20 13:00:27"},
		{"factory-software", "7.1"},
		{"free-memory", "3758096384"},
		{"total-memory", "4294967296"},
		{"cpu", "ARM64"},
		{"cpu-count", "4"},
		{"cpu-frequency", "1700"},
		{"cpu-load", strconv.Itoa(load)},
		{"free-hdd-space", "100663296"},
		{"total-hdd-space", "134217728"},
		{"architecture-name", "arm64"},
		{"board-name", "CCR2004-1G-12S+2XS"},
		{"platform", "MikroTik"},
	}
}
