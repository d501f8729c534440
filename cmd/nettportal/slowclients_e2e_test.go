package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slowPost opens a connection from local address ip and sends the headers
// of a POST whose 1 MiB body never comes.
func slowPost(addr, ip string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_, err = fmt.Fprintf(c, "POST /api/login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{", addr)
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// TestSlowClientsDoNotStarveServer: 1,000 connections holding a request
// body open (from ten addresses) must neither take every file descriptor
// nor stop /healthz and accounting; the per-address cap closes what is
// over it, and the read timeout cuts the bodies. The process's descriptor
// limit is set so the slow clients fit but the server cannot hold one
// descriptor for each of them as well: today's server ran out of them.
func TestSlowClientsDoNotStarveServer(t *testing.T) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	const clients, addrs, perAddr = 1000, 10, 32
	limit := uint64(clients + addrs*perAddr + 400) // slow clients, their capped server side, the rest of the process
	if old.Max < limit {
		t.Skipf("RLIMIT_NOFILE hard limit %d is below %d", old.Max, limit)
	}
	dbURL := migratedDBWithRouter(t, "core-1", "127.0.0.1", "testing123")
	srv := startServe(t, dbURL, "--http-read-timeout", "3s", "--http-conns-per-client", fmt.Sprint(perAddr))
	set := syscall.Rlimit{Cur: limit, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &set); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })

	addr := strings.TrimPrefix(srv.HTTPURL, "http://")
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < clients; i++ {
		c, err := slowPost(addr, fmt.Sprintf("127.0.9.%d", 1+i%addrs))
		if err != nil {
			t.Fatalf("slow client %d: %v", i, err)
		}
		conns = append(conns, c)
	}

	// /healthz answers at once from another address, again and again.
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < 20; i++ {
		start := time.Now()
		resp, err := hc.Get(srv.HTTPURL + "/healthz")
		if err != nil {
			t.Fatalf("healthz %d with %d slow clients connected: %v", i, clients, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "ok" {
			t.Fatalf("healthz %d: %d %s", i, resp.StatusCode, body)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("healthz took %v", d)
		}
	}
	// Accounting still flows and is stored.
	ok, out := radclient(t, srv.AcctAddr, "testing123", "Acct-Status-Type = Start\nAcct-Session-Id = \"slow-1\"\nUser-Name = \"kari\"\nNAS-IP-Address = 127.0.0.1\n")
	if !ok {
		t.Fatalf("accounting unanswered with %d slow HTTP clients connected:\n%s", clients, out)
	}

	// The server cut the held bodies: every slow connection ends (closed
	// over the cap at once, or after the 3s read timeout) without the
	// client doing anything.
	deadline := time.Now().Add(15 * time.Second)
	buf := make([]byte, 4096)
	for i, c := range conns {
		c.SetReadDeadline(deadline)
		for {
			_, err := c.Read(buf)
			if err == nil {
				continue
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("slow client %d still connected after 15s: the body was never cut", i)
			}
			break
		}
	}
}
