package routeros

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

var errUptime = errors.New("invalid RouterOS duration")

// uptimeUnit maps the suffixes RouterOS uses in durations. Sub-second units
// appear in some menus (e.g. "1s500ms"), so they are accepted too.
func uptimeUnit(suffix string) (time.Duration, bool) {
	switch suffix {
	case "w":
		return 7 * 24 * time.Hour, true
	case "d":
		return 24 * time.Hour, true
	case "h":
		return time.Hour, true
	case "m":
		return time.Minute, true
	case "s":
		return time.Second, true
	case "ms":
		return time.Millisecond, true
	case "us":
		return time.Microsecond, true
	case "ns":
		return time.Nanosecond, true
	}
	return 0, false
}

// ParseUptime parses a RouterOS duration: "1w2d3h4m5s", "3h12m7s", "45s",
// the older clock form "00:01:02" (optionally after a "2d" or "1w2d"
// prefix, as RouterOS 6 printed it), or "0s".
func ParseUptime(s string) (time.Duration, error) {
	in := s
	if s == "" {
		return 0, fmt.Errorf("parse uptime %q: %w", in, errUptime)
	}
	var total time.Duration
	add := func(n uint64, unit time.Duration) error {
		if n > uint64(1<<63-1)/uint64(unit) {
			return fmt.Errorf("parse uptime %q: overflow: %w", in, errUptime)
		}
		d := time.Duration(n) * unit
		if total > 1<<63-1-d {
			return fmt.Errorf("parse uptime %q: overflow: %w", in, errUptime)
		}
		total += d
		return nil
	}
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("parse uptime %q: %w", in, errUptime)
		}
		if i < len(s) && s[i] == ':' {
			d, err := parseClock(s)
			if err != nil {
				return 0, fmt.Errorf("parse uptime %q: %w", in, err)
			}
			if total > 1<<63-1-d {
				return 0, fmt.Errorf("parse uptime %q: overflow: %w", in, errUptime)
			}
			return total + d, nil
		}
		n, err := strconv.ParseUint(s[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse uptime %q: %w", in, errUptime)
		}
		s = s[i:]
		j := 0
		for j < len(s) && s[j] >= 'a' && s[j] <= 'z' {
			j++
		}
		unit, ok := uptimeUnit(s[:j])
		if !ok {
			return 0, fmt.Errorf("parse uptime %q: unit %q: %w", in, s[:j], errUptime)
		}
		if err := add(n, unit); err != nil {
			return 0, err
		}
		s = s[j:]
	}
	return total, nil
}

// parseClock parses "HH:MM:SS" with an optional ".fraction" of seconds.
func parseClock(s string) (time.Duration, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, errUptime
	}
	sec, frac, _ := strings.Cut(parts[2], ".")
	var vals [3]uint64
	for i, p := range []string{parts[0], parts[1], sec} {
		if p == "" || len(p) > 10 {
			return 0, errUptime
		}
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return 0, errUptime
		}
		vals[i] = v
	}
	if vals[1] > 59 || vals[2] > 59 {
		return 0, errUptime
	}
	d := time.Duration(vals[0])*time.Hour + time.Duration(vals[1])*time.Minute + time.Duration(vals[2])*time.Second
	if frac != "" {
		if len(frac) > 9 {
			return 0, errUptime
		}
		f, err := strconv.ParseUint(frac, 10, 64)
		if err != nil {
			return 0, errUptime
		}
		for range 9 - len(frac) {
			f *= 10
		}
		d += time.Duration(f)
	}
	return d, nil
}

// FormatUptime renders d the way RouterOS shows uptimes: "1w2d3h4m5s",
// zero units left out, whole seconds only, "0s" for anything under a second.
func FormatUptime(d time.Duration) string {
	if d < time.Second {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit   time.Duration
		suffix byte
	}{
		{7 * 24 * time.Hour, 'w'},
		{24 * time.Hour, 'd'},
		{time.Hour, 'h'},
		{time.Minute, 'm'},
		{time.Second, 's'},
	} {
		if n := d / u.unit; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10))
			b.WriteByte(u.suffix)
			d -= n * u.unit
		}
	}
	return b.String()
}
