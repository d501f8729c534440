package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestMetricsOnSeparateListener: with --metrics-addr, Prometheus scrapes a
// listener of its own (127.0.0.1 here), and --metrics-on-http-addr=false
// takes the unauthenticated /metrics off the UI port.
func TestMetricsOnSeparateListener(t *testing.T) {
	dbURL := migratedDB(t)
	srv := startServe(t, dbURL, "--metrics-addr", "127.0.0.1:0", "--metrics-on-http-addr=false")
	metricsURL := srv.MetricsURL

	m := scrape(t, metricsURL)
	if len(m) == 0 {
		t.Fatal("no series on --metrics-addr")
	}
	resp, err := http.Get(metricsURL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz on --metrics-addr: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	resp, err = http.Get(srv.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 || strings.Contains(string(body), "nettportal_") {
		t.Errorf("/metrics on the UI port with --metrics-on-http-addr=false: %d %.200s", resp.StatusCode, body)
	}
}

// TestPprofOnlyOnMetricsListener: --pprof serves Go's profiler on
// --metrics-addr and nowhere else, and needs that listener.
func TestPprofOnlyOnMetricsListener(t *testing.T) {
	err := runServe(context.Background(), []string{"--pprof", "--db", "postgres://127.0.0.1:1/none"}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Errorf("--pprof without --metrics-addr: %v, want an error naming --metrics-addr", err)
	}

	srv := startServe(t, migratedDB(t), "--metrics-addr", "127.0.0.1:0", "--pprof")
	resp, err := http.Get(srv.MetricsURL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile") {
		t.Errorf("pprof on --metrics-addr: %d %.200s", resp.StatusCode, body)
	}
	resp, err = http.Get(srv.HTTPURL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "goroutine profile") {
		t.Errorf("pprof answered on --http-addr: %d %.200s", resp.StatusCode, body)
	}
}
