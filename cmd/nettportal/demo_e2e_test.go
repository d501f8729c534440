package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nettportal/nettportal/store/storetest"
)

// TestDemoPrintsALoginThatSeesLiveSessions runs the README's first command
// as a user would: it prints a URL and a login, and with that login the
// API shows the simulated fleet's sessions, growing as they log in.
func TestDemoPrintsALoginThatSeesLiveSessions(t *testing.T) {
	dbURL := storetest.MustCreateDatabase(t)
	out := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Port 0: the demo picks the ports and prints the URL.
	go func() {
		done <- run(ctx, []string{"demo", "--db", dbURL, "--http-addr", "127.0.0.1:0", "--acct-addr", "127.0.0.1:0",
			"--routers", "2", "--sessions", "10", "--interim", "2s",
			"--secret-key-file", filepath.Join(t.TempDir(), "demo.key")}, noEnv, out, &lockedBuffer{})
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("demo did not stop")
		}
	}()
	login := regexp.MustCompile(`open (http://\S+) and log in as (\S+) / (\S+)`)
	var m []string
	if _, ok := out.await(30*time.Second, nil, func(log string) (string, bool) {
		m = login.FindStringSubmatch(log)
		return "", m != nil
	}); !ok {
		t.Fatalf("demo printed no login:\n%s", out.String())
	}
	base, user, password := m[1], m[2], m[3]
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	resp, err := hc.Post(base+"/api/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login with the printed credentials: %d", resp.StatusCode)
	}
	var page struct {
		Total    int `json:"total"`
		Sessions []struct {
			Username string `json:"username"`
			Router   string `json:"router"`
			Customer string `json:"customer"`
			Profile  string `json:"profile"`
		} `json:"sessions"`
	}
	// The demo runs as a user starts it: its sessions show only through
	// its API.
	eventually(t, 20*time.Second, 200*time.Millisecond, "the fleet's 20 live sessions", func() (string, bool) {
		resp, err := hc.Get(base + "/api/sessions?limit=100")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		return fmt.Sprintf("%d live sessions\n%s", page.Total, out.String()), page.Total == 20
	})
	named, profiled := 0, 0
	for _, s := range page.Sessions {
		if !strings.HasPrefix(s.Router, "sim-") {
			t.Errorf("session on router %q", s.Router)
		}
		if s.Customer != "" {
			named++
		}
		if s.Profile != "" {
			profiled++
		}
	}
	// The demo links about 85% of subscribers to customers; every one of
	// them has a plan from Mikrotik-Group or from the customer record.
	if n := len(page.Sessions); named*10 < n*7 || profiled*10 < n*7 {
		t.Errorf("of %d sessions %d have a customer name and %d a profile, want most: %+v", n, named, profiled, page.Sessions)
	}
}
