package spool

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/nettportal/nettportal"
)

// formatVersion is the version of the record payload Append writes. Every
// payload is a JSON object with a "v" member; one without it was written
// before the format was versioned (the JSON of the domain struct at the
// time, read by legacyRecord). A segment may hold both: an upgraded server
// appends to the segment an older one left behind.
//
// Version 1 names each field after the RADIUS attribute or radacct column
// it carries, so the domain struct can change without changing what is on
// disk. To change the format: add recordV2, write it, and keep reading
// recordV1 (a spool may outlive an upgrade).
const formatVersion = 1

// recordV1 is format version 1. Octet counters are the 64-bit totals
// (gigawords << 32 | octets); times are RFC 3339 with nanoseconds.
type recordV1 struct {
	V              int        `json:"v"`
	Status         uint32     `json:"acct_status_type"`
	RouterID       int64      `json:"router_id"`
	EventTime      time.Time  `json:"event_time"`
	UniqueID       string     `json:"acct_unique_id,omitempty"`
	SessionID      string     `json:"acct_session_id,omitempty"`
	Username       string     `json:"user_name,omitempty"`
	Realm          string     `json:"realm,omitempty"`
	NASIP          netip.Addr `json:"nas_ip_address"`
	NASIdent       string     `json:"nas_identifier,omitempty"`
	NASPortID      string     `json:"nas_port_id,omitempty"`
	NASPort        *uint32    `json:"nas_port,omitempty"`
	NASPortType    string     `json:"nas_port_type,omitempty"`
	SessionTime    *uint32    `json:"acct_session_time,omitempty"`
	InputOctets    *uint64    `json:"acct_input_octets,omitempty"`
	OutputOctets   *uint64    `json:"acct_output_octets,omitempty"`
	InputPackets   *uint32    `json:"acct_input_packets,omitempty"`
	OutputPackets  *uint32    `json:"acct_output_packets,omitempty"`
	Authentic      string     `json:"acct_authentic,omitempty"`
	ConnectInfo    string     `json:"connect_info,omitempty"`
	CalledStation  string     `json:"called_station_id,omitempty"`
	CallingStation string     `json:"calling_station_id,omitempty"`
	TerminateCause string     `json:"acct_terminate_cause,omitempty"`
	ServiceType    string     `json:"service_type,omitempty"`
	FramedProtocol string     `json:"framed_protocol,omitempty"`
	FramedIP       netip.Addr `json:"framed_ip_address"`
	FramedIPv6Addr netip.Addr `json:"framed_ipv6_address"`
	FramedIPv6Pfx  string     `json:"framed_ipv6_prefix,omitempty"`
	DelegatedPfx   string     `json:"delegated_ipv6_prefix,omitempty"`
	FramedIfaceID  string     `json:"framed_interface_id,omitempty"`
	Class          string     `json:"class,omitempty"`
	InterimSeconds *uint32    `json:"acct_interim_interval,omitempty"`
	Profile        string     `json:"mikrotik_group,omitempty"`
	FromAPI        bool       `json:"from_api,omitempty"`
	// The packet as received and where from, so a record quarantined on
	// replay keeps them (absent in records from the RouterOS API).
	Raw    []byte         `json:"raw_packet,omitempty"`
	Source netip.AddrPort `json:"source"`
}

func encodeRecord(r *nettportal.AccountingRecord) ([]byte, error) {
	return json.Marshal(recordV1{V: formatVersion, Status: uint32(r.Status), RouterID: r.RouterID, EventTime: r.EventTime,
		UniqueID: r.UniqueID, SessionID: r.SessionID, Username: r.Username, Realm: r.Realm, NASIP: r.NASIP,
		NASIdent: r.NASIdent, NASPortID: r.NASPortID, NASPort: r.NASPort, NASPortType: r.NASPortTyp,
		SessionTime: r.SessionTime, InputOctets: r.InputOctets, OutputOctets: r.OutputOctets,
		InputPackets: r.InputPackets, OutputPackets: r.OutputPackets, Authentic: r.Authentic,
		ConnectInfo: r.ConnectInfo, CalledStation: r.CalledStation, CallingStation: r.CallingStation,
		TerminateCause: r.TerminateCause, ServiceType: r.ServiceType, FramedProtocol: r.FramedProtocol,
		FramedIP: r.FramedIP, FramedIPv6Addr: r.FramedIPv6Addr, FramedIPv6Pfx: r.FramedIPv6Pfx,
		DelegatedPfx: r.DelegatedPfx, FramedIfaceID: r.FramedIfaceID, Class: r.Class,
		InterimSeconds: r.InterimSeconds, Profile: r.Profile, FromAPI: r.FromAPI, Raw: r.Raw, Source: r.Source})
}

func (w *recordV1) record() nettportal.AccountingRecord {
	return nettportal.AccountingRecord{Status: nettportal.StatusType(w.Status), RouterID: w.RouterID, EventTime: w.EventTime,
		UniqueID: w.UniqueID, SessionID: w.SessionID, Username: w.Username, Realm: w.Realm, NASIP: w.NASIP,
		NASIdent: w.NASIdent, NASPortID: w.NASPortID, NASPort: w.NASPort, NASPortTyp: w.NASPortType,
		SessionTime: w.SessionTime, InputOctets: w.InputOctets, OutputOctets: w.OutputOctets,
		InputPackets: w.InputPackets, OutputPackets: w.OutputPackets, Authentic: w.Authentic,
		ConnectInfo: w.ConnectInfo, CalledStation: w.CalledStation, CallingStation: w.CallingStation,
		TerminateCause: w.TerminateCause, ServiceType: w.ServiceType, FramedProtocol: w.FramedProtocol,
		FramedIP: w.FramedIP, FramedIPv6Addr: w.FramedIPv6Addr, FramedIPv6Pfx: w.FramedIPv6Pfx,
		DelegatedPfx: w.DelegatedPfx, FramedIfaceID: w.FramedIfaceID, Class: w.Class,
		InterimSeconds: w.InterimSeconds, Profile: w.Profile, FromAPI: w.FromAPI, Raw: w.Raw, Source: w.Source}
}

// legacyRecord reads payloads written before versioning: the JSON of
// nettportal.AccountingRecord as it was then, Go field names as keys.
type legacyRecord struct {
	Status         uint32
	RouterID       int64
	EventTime      time.Time
	UniqueID       string
	SessionID      string
	Username       string
	Realm          string
	NASIP          netip.Addr
	NASIdent       string
	NASPortID      string
	NASPort        *uint32
	NASPortTyp     string
	SessionTime    *uint32
	InputOctets    *uint64
	OutputOctets   *uint64
	InputPackets   *uint32
	OutputPackets  *uint32
	Authentic      string
	ConnectInfo    string
	CalledStation  string
	CallingStation string
	TerminateCause string
	ServiceType    string
	FramedProtocol string
	FramedIP       netip.Addr
	FramedIPv6Addr netip.Addr
	FramedIPv6Pfx  string
	DelegatedPfx   string
	FramedIfaceID  string
	Class          string
	InterimSeconds *uint32
	Profile        string
	FromAPI        bool
}

func (l *legacyRecord) record() nettportal.AccountingRecord {
	w := recordV1{Status: l.Status, RouterID: l.RouterID, EventTime: l.EventTime, UniqueID: l.UniqueID,
		SessionID: l.SessionID, Username: l.Username, Realm: l.Realm, NASIP: l.NASIP, NASIdent: l.NASIdent,
		NASPortID: l.NASPortID, NASPort: l.NASPort, NASPortType: l.NASPortTyp, SessionTime: l.SessionTime,
		InputOctets: l.InputOctets, OutputOctets: l.OutputOctets, InputPackets: l.InputPackets,
		OutputPackets: l.OutputPackets, Authentic: l.Authentic, ConnectInfo: l.ConnectInfo,
		CalledStation: l.CalledStation, CallingStation: l.CallingStation, TerminateCause: l.TerminateCause,
		ServiceType: l.ServiceType, FramedProtocol: l.FramedProtocol, FramedIP: l.FramedIP,
		FramedIPv6Addr: l.FramedIPv6Addr, FramedIPv6Pfx: l.FramedIPv6Pfx, DelegatedPfx: l.DelegatedPfx,
		FramedIfaceID: l.FramedIfaceID, Class: l.Class, InterimSeconds: l.InterimSeconds, Profile: l.Profile,
		FromAPI: l.FromAPI}
	return w.record()
}

// decodeRecord reads a payload of any known version.
func decodeRecord(payload []byte) (nettportal.AccountingRecord, error) {
	var head struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(payload, &head); err != nil {
		return nettportal.AccountingRecord{}, fmt.Errorf("not a spool record: %w", err)
	}
	switch {
	case head.V == nil:
		var l legacyRecord
		if err := json.Unmarshal(payload, &l); err != nil {
			return nettportal.AccountingRecord{}, fmt.Errorf("unversioned spool record: %w", err)
		}
		return l.record(), nil
	case *head.V == 1:
		var w recordV1
		if err := json.Unmarshal(payload, &w); err != nil {
			return nettportal.AccountingRecord{}, fmt.Errorf("spool record version 1: %w", err)
		}
		return w.record(), nil
	default:
		return nettportal.AccountingRecord{}, fmt.Errorf("spool record version %d is newer than this server reads (%d): run the newer version to replay it", *head.V, formatVersion)
	}
}
