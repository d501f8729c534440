package coa_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"layeh.com/radius/rfc3576"

	"github.com/nettportal/nettportal/coa"
	"github.com/nettportal/nettportal/coa/coatest"
)

// fakeRemover stands in for the RouterOS API client.
type fakeRemover struct {
	removed bool
	err     error

	mu    sync.Mutex
	calls [][2]string
}

func (f *fakeRemover) RemoveActive(_ context.Context, name, sessionID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, [2]string{name, sessionID})
	return f.removed, f.err
}

func (f *fakeRemover) called() [][2]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][2]string(nil), f.calls...)
}

func TestDisconnectorPolicy(t *testing.T) {
	nak503 := coatest.NAK(rfc3576.ErrorCause_Value_SessionContextNotFound)
	cases := []struct {
		name    string
		handler coatest.Handler
		opts    []coatest.Option
		api     *fakeRemover // nil: the router has no API
		noAPI   bool

		wantOK       bool
		wantMethod   string
		wantResult   coa.Result
		wantCause    uint32
		wantDetail   string
		wantAttempts []coa.Result
	}{
		{
			name: "ACK needs no fallback", handler: coatest.ACK, api: &fakeRemover{removed: true},
			wantOK: true, wantMethod: "radius", wantResult: coa.ResultACK,
			wantDetail: "radius ack", wantAttempts: []coa.Result{coa.ResultACK},
		},
		{
			name: "NAK then removed via API", handler: nak503, api: &fakeRemover{removed: true},
			wantOK: true, wantMethod: "routeros", wantResult: coa.ResultACK, wantCause: 503,
			wantDetail:   "radius nak (Error-Cause 503 Session-Context-Not-Found); removed via RouterOS API",
			wantAttempts: []coa.Result{coa.ResultNAK, coa.ResultACK},
		},
		{
			name: "timeout then removed via API", handler: coatest.ACK, opts: []coatest.Option{coatest.Ignore()},
			api:    &fakeRemover{removed: true},
			wantOK: true, wantMethod: "routeros", wantResult: coa.ResultACK,
			wantDetail:   "radius timeout (no response after 3 attempt(s) of 100ms); removed via RouterOS API",
			wantAttempts: []coa.Result{coa.ResultTimeout, coa.ResultACK},
		},
		{
			name: "API has no such session", handler: nak503, api: &fakeRemover{},
			wantOK: false, wantMethod: "routeros", wantResult: coa.ResultNAK, wantCause: 503,
			wantDetail:   `radius nak (Error-Cause 503 Session-Context-Not-Found); RouterOS API has no active session "bob" with session id "8100000c"`,
			wantAttempts: []coa.Result{coa.ResultNAK, coa.ResultNAK},
		},
		{
			name: "API error", handler: nak503, api: &fakeRemover{err: errors.New("login failed")},
			wantOK: false, wantMethod: "routeros", wantResult: coa.ResultError, wantCause: 503,
			wantDetail:   "radius nak (Error-Cause 503 Session-Context-Not-Found); RouterOS API failed: login failed",
			wantAttempts: []coa.Result{coa.ResultNAK, coa.ResultError},
		},
		{
			name: "NAK without API", handler: nak503, noAPI: true,
			wantOK: false, wantMethod: "radius", wantResult: coa.ResultNAK, wantCause: 503,
			wantDetail:   "radius nak (Error-Cause 503 Session-Context-Not-Found); no RouterOS API fallback for this router",
			wantAttempts: []coa.Result{coa.ResultNAK},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, tc.handler, tc.opts...)
			d := coa.Disconnector{Client: &coa.Client{Timeout: 100 * time.Millisecond}}
			var api coa.Remover
			if !tc.noAPI {
				api = tc.api
			}
			out := d.Disconnect(t.Context(), target(srv), bobSession(), api)
			if out.OK != tc.wantOK || out.Method != tc.wantMethod || out.Result != tc.wantResult || out.ErrorCause != tc.wantCause {
				t.Errorf("outcome %+v", out)
			}
			if out.Detail != tc.wantDetail {
				t.Errorf("detail\n got %q\nwant %q", out.Detail, tc.wantDetail)
			}
			if len(out.Attempts) != len(tc.wantAttempts) {
				t.Fatalf("attempts %+v", out.Attempts)
			}
			for i, a := range out.Attempts {
				wantMethod := []string{"radius", "routeros"}[i]
				if a.Method != wantMethod || a.Result != tc.wantAttempts[i] || a.At.IsZero() || a.Detail == "" && a.Result != coa.ResultACK {
					t.Errorf("attempt %d: %+v", i, a)
				}
			}
			if tc.api != nil {
				calls := tc.api.called()
				if len(tc.wantAttempts) == 1 && len(calls) != 0 {
					t.Errorf("API called after %s: %v", tc.wantAttempts[0], calls)
				}
				if len(tc.wantAttempts) == 2 && (len(calls) != 1 || calls[0] != [2]string{"bob", "8100000c"}) {
					t.Errorf("API calls %v", calls)
				}
			}
		})
	}
}

// A router known only through the API has no RADIUS secret: the policy
// goes straight to the API and still records why.
func TestDisconnectorRouterWithoutRADIUS(t *testing.T) {
	api := &fakeRemover{removed: true}
	var d coa.Disconnector
	out := d.Disconnect(t.Context(), coa.Target{Addr: "192.0.2.1:3799"}, bobSession(), api)
	if !out.OK || out.Method != "routeros" || len(out.Attempts) != 2 || out.Attempts[0].Result != coa.ResultError {
		t.Fatalf("outcome %+v", out)
	}
	if !strings.HasPrefix(out.Detail, "radius error (") || !strings.HasSuffix(out.Detail, "; removed via RouterOS API") {
		t.Errorf("detail %q", out.Detail)
	}
}
