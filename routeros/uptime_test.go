package routeros_test

import (
	"testing"
	"time"

	"github.com/nettportal/nettportal/routeros"
)

func TestParseUptime(t *testing.T) {
	const (
		d = 24 * time.Hour
		w = 7 * d
	)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"0s", 0},
		{"45s", 45 * time.Second},
		{"3h12m7s", 3*time.Hour + 12*time.Minute + 7*time.Second},
		{"1w2d3h4m5s", w + 2*d + 3*time.Hour + 4*time.Minute + 5*time.Second},
		{"52w", 52 * w},
		{"1d", d},
		{"10m", 10 * time.Minute},
		{"1s500ms", 1500 * time.Millisecond},
		{"00:01:02", time.Minute + 2*time.Second},
		{"23:59:59", 23*time.Hour + 59*time.Minute + 59*time.Second},
		{"2d03:04:05", 2*d + 3*time.Hour + 4*time.Minute + 5*time.Second},
		{"00:00:01.5", 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		got, err := routeros.ParseUptime(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseUptime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "abc", "5", "5x", "h", "1h2", "-1s", "1h 2m", "00:61:00", "1:2", "00:00:00:00",
		"99999999999999999999s", "9999999999999w", ":01:02", "1d:00"} {
		if got, err := routeros.ParseUptime(bad); err == nil {
			t.Errorf("ParseUptime(%q) = %v, want an error", bad, got)
		}
	}
}

func TestFormatUptime(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{-time.Second, "0s"},
		{999 * time.Millisecond, "0s"},
		{45 * time.Second, "45s"},
		{time.Hour, "1h"},
		{3*time.Hour + 12*time.Minute + 7*time.Second, "3h12m7s"},
		{9*24*time.Hour + 3*time.Hour + 4*time.Minute + 5*time.Second, "1w2d3h4m5s"},
		{7*24*time.Hour + 5*time.Second + 300*time.Millisecond, "1w5s"},
	}
	for _, tt := range tests {
		if got := routeros.FormatUptime(tt.in); got != tt.want {
			t.Errorf("FormatUptime(%v) = %q, want %q", tt.in, got, tt.want)
		}
		if tt.in >= 0 {
			back, err := routeros.ParseUptime(tt.want)
			if err != nil || back != tt.in.Truncate(time.Second) {
				t.Errorf("ParseUptime(FormatUptime(%v)) = %v, %v", tt.in, back, err)
			}
		}
	}
}

func FuzzParseUptime(f *testing.F) {
	for _, s := range []string{"1w2d3h4m5s", "00:01:02", "2d03:04:05", "1s500ms", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := routeros.ParseUptime(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseUptime(%q) = %v, negative", s, d)
		}
		if d%time.Second == 0 {
			if back, err := routeros.ParseUptime(routeros.FormatUptime(d)); err != nil || back != d {
				t.Fatalf("round trip of %v via %q: %v, %v", d, routeros.FormatUptime(d), back, err)
			}
		}
	})
}
