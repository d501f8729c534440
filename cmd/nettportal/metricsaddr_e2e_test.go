package main

import (
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
