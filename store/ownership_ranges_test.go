package store

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestOwnedRanges(t *testing.T) {
	p := netip.MustParsePrefix
	for _, c := range []struct {
		own    string
		others []string
		want   string
	}{
		{"10.0.0.1/32", nil, "[10.0.0.1-10.0.0.1]"},
		{"10.0.0.1/32", []string{"10.0.0.1/32"}, "[]"},
		{"10.1.0.0/24", nil, "[10.1.0.0-10.1.0.255]"},
		{"10.1.0.0/24", []string{"10.1.0.128/25"}, "[10.1.0.0-10.1.0.127]"},
		{"10.1.0.0/24", []string{"10.1.0.0/25"}, "[10.1.0.128-10.1.0.255]"},
		{"10.1.0.0/24", []string{"10.1.0.7/32", "10.1.0.128/25", "10.1.0.130/32", "10.1.0.64/26"},
			"[10.1.0.0-10.1.0.6 10.1.0.8-10.1.0.63]"},
		{"10.1.0.0/24", []string{"10.1.0.0/24"}, "[]"},
		{"10.1.0.0/24", []string{"10.0.0.0/8", "2001:db8::/32", "10.2.0.1/32"}, "[10.1.0.0-10.1.0.255]"},
		{"10.1.0.0/24", []string{"10.1.0.0/32", "10.1.0.255/32"}, "[10.1.0.1-10.1.0.254]"},
		{"0.0.0.0/0", []string{"128.0.0.0/1"}, "[0.0.0.0-127.255.255.255]"},
		{"2001:db8::/126", []string{"2001:db8::1/128"}, "[2001:db8::-2001:db8:: 2001:db8::2-2001:db8::3]"},
	} {
		var others []netip.Prefix
		for _, o := range c.others {
			others = append(others, p(o))
		}
		got := "["
		for i, r := range ownedRanges(p(c.own), others) {
			if i > 0 {
				got += " "
			}
			got += fmt.Sprintf("%s-%s", r.lo, r.hi)
		}
		got += "]"
		if got != c.want {
			t.Errorf("ownedRanges(%s, %v) = %s, want %s", c.own, c.others, got, c.want)
		}
	}
}
