package coa_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc3576"

	"github.com/nettportal/nettportal/coa/coatest"
	"github.com/nettportal/nettportal/freeradius/freeradiustest"
)

// radclient runs FreeRADIUS's radclient against addr and returns its
// combined output and whether it exited zero. Without radclient it fails
// under CI and skips otherwise.
func radclient(t *testing.T, addr, command, secret, attrs string) (string, bool) {
	t.Helper()
	path := freeradiustest.Radclient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-x", "-r", "1", "-t", "2", addr, command, secret)
	cmd.Stdin = strings.NewReader(attrs)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("radclient hung: %s", out.String())
	}
	return out.String(), err == nil
}

// TestRadclient checks both directions against an independent RADIUS
// implementation: our VerifyRequest accepts what radclient signs, and
// radclient accepts what EncodeResponse signs (it checks the Response
// Authenticator and the Message-Authenticator).
func TestRadclient(t *testing.T) {
	const in = `User-Name = "bob", Acct-Session-Id = "8100000c", Message-Authenticator = 0x00`
	cases := []struct {
		name, command string
		handler       coatest.Handler
		opts          []coatest.Option
		wantOK        bool
		wantOut       string
	}{
		{"disconnect ACK", "disconnect", coatest.ACK, nil, true, "Received Disconnect-ACK"},
		{"CoA ACK", "coa", coatest.ACK, nil, true, "Received CoA-ACK"},
		{"disconnect NAK", "disconnect", coatest.NAK(rfc3576.ErrorCause_Value_SessionContextNotFound), nil, false, "Session-Context-Not-Found"},
		{"wrong response secret", "disconnect", coatest.ACK, []coatest.Option{coatest.ResponseSecret("nope")}, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := coatest.NewServer("s3cret", tc.handler, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			out, ok := radclient(t, srv.Addr(), tc.command, "s3cret", in)
			t.Log(out)
			reqs := srv.Requests()
			if len(reqs) == 0 {
				t.Fatal("no request received")
			}
			if err := reqs[0].Err; err != nil {
				t.Fatalf("radclient's request rejected: %v", err)
			}
			if got := rfc2865.UserName_GetString(reqs[0].Packet); got != "bob" {
				t.Errorf("User-Name %q", got)
			}
			if ok != tc.wantOK {
				t.Errorf("radclient success %v, want %v", ok, tc.wantOK)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Errorf("radclient output lacks %q", tc.wantOut)
			}
		})
	}
}
