package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB, network string) int {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	default:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
}

// lockedBuffer is an io.Writer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// mustRun runs a one-shot command through the real run().
func mustRun(t testing.TB, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args, noEnv, &out, &errOut); err != nil {
		t.Fatalf("nettportal %v: %v\n%s", args, err, errOut.String())
	}
	return out.String()
}

// noEnv is an empty environment but for the secret key, so in-process
// serve and router commands never create the default /var/lib key file and
// all agree on one key.
func noEnv(name string) string {
	if name == secretKeyEnv {
		return testSecretKey
	}
	return ""
}

// testSecretKey is the in-process tests' key (base64 of 32 bytes).
const testSecretKey = "bmV0dHBvcnRhbC10ZXN0LWtleS0wMTIzNDU2Nzg5YWI="

// testServer is `nettportal serve` running in-process on loopback ports.
type testServer struct {
	AcctAddr string
	HTTPURL  string
	Log      *lockedBuffer
	stop     func()
}

// startServe runs `serve` with args on fresh loopback ports and waits until
// /healthz answers. It stops at cleanup.
func startServe(t testing.TB, dbURL string, extra ...string) *testServer {
	t.Helper()
	acct := "127.0.0.1:" + strconv.Itoa(freePort(t, "udp"))
	httpAddr := "127.0.0.1:" + strconv.Itoa(freePort(t, "tcp"))
	return startServeAt(t, dbURL, acct, httpAddr, extra...)
}

// startServeAt is startServe on given addresses, so a test can restart the
// server where the browser and the routers expect it.
func startServeAt(t testing.TB, dbURL, acct, httpAddr string, extra ...string) *testServer {
	t.Helper()
	return startServeTuned(t, dbURL, acct, httpAddr, nil, extra...)
}

// startServeTuned is startServeAt with tune, when set, changing serve's
// configuration after the flags (for the hooks no flag reaches).
func startServeTuned(t testing.TB, dbURL, acct, httpAddr string, tune func(*serveConfig), extra ...string) *testServer {
	t.Helper()
	ts := &testServer{AcctAddr: acct, HTTPURL: "http://" + httpAddr, Log: &lockedBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args := append([]string{"serve", "--db", dbURL, "--acct-addr", acct, "--http-addr", httpAddr, "--log-level", "debug",
		"--spool-dir", t.TempDir()}, extra...)
	go func() {
		if tune != nil {
			done <- runServeWith(ctx, args[1:], noEnv, ts.Log, tune)
			return
		}
		done <- run(ctx, args, noEnv, os.Stdout, ts.Log)
	}()
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("serve did not stop")
			}
		})
	}
	t.Cleanup(ts.stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, ts.Log.String())
		default:
		}
		resp, err := http.Get(ts.HTTPURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return ts
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready: %v\n%s", err, ts.Log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
