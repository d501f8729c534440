package routeros_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ros "github.com/go-routeros/routeros/v3"
	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/routeros"
	"github.com/nettportal/nettportal/routeros/routerostest"
)

func newPair(t *testing.T, cfg routeros.Config) (*routerostest.Server, *routeros.Client) {
	t.Helper()
	s := routerostest.NewUnstartedServer("")
	s.Username, s.Password = "api", "pw"
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	cfg.Addr, cfg.Username, cfg.Password = s.Addr, "api", "pw"
	c := routeros.NewClient(cfg, zerolog.New(zerolog.NewTestWriter(t)))
	t.Cleanup(func() { c.Close() })
	return s, c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestActiveSessionsJoinsCounters(t *testing.T) {
	s, c := newPair(t, routeros.Config{})
	idA := s.SetSession(routerostest.Session{Name: "alice", CallerID: "AA:BB:CC:DD:EE:01", Address: "100.64.0.2",
		Uptime: 3*time.Hour + 12*time.Minute + 7*time.Second, SessionID: 0x8100000c, Radius: true,
		RxBytes: 1 << 33, TxBytes: 5000})
	s.SetSession(routerostest.Session{Name: "bob", SessionID: 0x8100000d, RxBytes: 10, TxBytes: 20})

	got, err := c.ActiveSessions(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d sessions", len(got))
	}
	want := routeros.ActiveSession{ID: idA, Name: "alice", Service: "pppoe", CallerID: "AA:BB:CC:DD:EE:01",
		Address: "100.64.0.2", Uptime: 3*time.Hour + 12*time.Minute + 7*time.Second, SessionID: "8100000c",
		Radius: true, InputOctets: 1 << 33, OutputOctets: 5000, HasCounters: true}
	if got[0] != want {
		t.Errorf("alice = %+v\nwant    %+v", got[0], want)
	}
	if b := got[1]; b.Name != "bob" || b.SessionID != "8100000d" || b.InputOctets != 10 || b.OutputOctets != 20 || !b.HasCounters || b.Radius {
		t.Errorf("bob = %+v", b)
	}
	// The interface query filters on the server, not here.
	cmds := s.Commands()
	last := cmds[len(cmds)-1]
	if last.Path() != "/interface/print" {
		t.Fatalf("last command %q", last.Words)
	}
	found := false
	for _, w := range last.Words {
		found = found || w == "?type=pppoe-in"
	}
	if !found {
		t.Errorf("interface print without ?type=pppoe-in: %q", last.Words)
	}
	if s.Logins() != 1 {
		t.Errorf("Logins() = %d, want the connection reused", s.Logins())
	}
}

func TestActiveSessionsEmpty(t *testing.T) {
	_, c := newPair(t, routeros.Config{})
	got, err := c.ActiveSessions(ctx(t))
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestActiveSessionsEmptyReplies(t *testing.T) {
	s := routerostest.NewUnstartedServer("")
	s.EmptyReplies = true
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := routeros.NewClient(routeros.Config{Addr: s.Addr, Username: "admin"}, zerolog.Nop())
	defer c.Close()
	got, err := c.ActiveSessions(ctx(t))
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestRemoveActive(t *testing.T) {
	s, c := newPair(t, routeros.Config{})
	var mu sync.Mutex
	var removed []string
	s.OnRemove = func(x routerostest.Session) { mu.Lock(); removed = append(removed, x.Name); mu.Unlock() }
	s.SetSession(routerostest.Session{Name: "alice", SessionID: 0x8100000c})
	s.SetSession(routerostest.Session{Name: "bob", SessionID: 0x8100000d})

	ok, err := c.RemoveActive(ctx(t), "alice", "8100000d") // bob's id
	if err != nil || ok {
		t.Fatalf("wrong session id: %v, %v", ok, err)
	}
	ok, err = c.RemoveActive(ctx(t), "nobody", "8100000c")
	if err != nil || ok {
		t.Fatalf("unknown user: %v, %v", ok, err)
	}
	if n := len(s.Sessions()); n != 2 {
		t.Fatalf("%d sessions left, want 2", n)
	}
	ok, err = c.RemoveActive(ctx(t), "alice", "0x8100000C")
	if err != nil || !ok {
		t.Fatalf("remove alice: %v, %v", ok, err)
	}
	cmd, err := s.AwaitCommand(ctx(t), "/ppp/active/remove")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := cmd.Attr(".id"); v == "" {
		t.Errorf("remove without .id: %q", cmd.Words)
	}
	mu.Lock()
	if len(removed) != 1 || removed[0] != "alice" {
		t.Errorf("OnRemove saw %v", removed)
	}
	mu.Unlock()
	if got := s.Sessions(); len(got) != 1 || got[0].Name != "bob" {
		t.Errorf("Sessions() = %v", got)
	}
	ok, err = c.RemoveActive(ctx(t), "alice", "8100000c")
	if err != nil || ok {
		t.Errorf("second remove: %v, %v", ok, err)
	}
	if _, err := c.RemoveActive(ctx(t), "bob", ""); !errors.Is(err, nettportal.ErrInvalid) {
		t.Errorf("empty session id: %v", err)
	}
}

func TestRemoveActiveVanishedBetweenPrintAndRemove(t *testing.T) {
	s, c := newPair(t, routeros.Config{})
	s.SetSession(routerostest.Session{Name: "alice", SessionID: 1})
	s.FailNext("/ppp/active/remove", "no such item")
	ok, err := c.RemoveActive(ctx(t), "alice", "00000001")
	if err != nil || ok {
		t.Errorf("got %v, %v; want false, nil", ok, err)
	}
}

func TestTrapKeepsConnection(t *testing.T) {
	s, c := newPair(t, routeros.Config{})
	s.FailNext("/system/identity/print", "boom")
	_, err := c.Identity(ctx(t))
	var de *ros.DeviceError
	if !errors.As(err, &de) || de.Sentence.Map["message"] != "boom" {
		t.Fatalf("err = %v", err)
	}
	if name, err := c.Identity(ctx(t)); err != nil || name != "MikroTik" {
		t.Fatalf("Identity() = %q, %v", name, err)
	}
	if s.Logins() != 1 {
		t.Errorf("Logins() = %d: a trap must not cost the connection", s.Logins())
	}
}

func TestSecretsIdentityResource(t *testing.T) {
	s := routerostest.NewUnstartedServer("")
	s.Identity, s.Version = "core-7", "7.18.2 (stable)"
	s.BootTime = time.Now().Add(-50 * time.Hour)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetSecret(routerostest.Secret{Name: "alice", Password: "x", Profile: "10M", Service: "pppoe"})
	c := routeros.NewClient(routeros.Config{Addr: s.Addr, Username: "admin"}, zerolog.Nop())
	defer c.Close()

	secrets, err := c.Secrets(ctx(t))
	if err != nil || len(secrets) != 1 || secrets[0] != (routeros.Secret{Name: "alice", Profile: "10M", Service: "pppoe"}) {
		t.Errorf("Secrets() = %v, %v", secrets, err)
	}
	cmds := s.Commands()
	if w := cmds[len(cmds)-1].Words; len(w) < 2 || w[1] != "=.proplist=name,profile,service" {
		t.Errorf("secrets must be read without passwords: %q", w)
	}
	if id, err := c.Identity(ctx(t)); err != nil || id != "core-7" {
		t.Errorf("Identity() = %q, %v", id, err)
	}
	r, err := c.Resource(ctx(t))
	if err != nil || r.Version != "7.18.2 (stable)" || r.BoardName == "" || r.Uptime < 50*time.Hour || r.Uptime > 51*time.Hour {
		t.Errorf("Resource() = %+v, %v", r, err)
	}
	s.Reboot()
	r, err = c.Resource(ctx(t))
	if err != nil || r.Uptime > time.Minute {
		t.Errorf("after reboot Resource() = %+v, %v", r, err)
	}
}

func TestReconnectAfterUnreachable(t *testing.T) {
	s, c := newPair(t, routeros.Config{Timeout: time.Second})
	routeros.SetBackoff(c, 10*time.Millisecond, 50*time.Millisecond)
	if _, err := c.Identity(ctx(t)); err != nil {
		t.Fatal(err)
	}
	s.SetUnreachable(true)
	for range 3 {
		if _, err := c.Identity(ctx(t)); err == nil {
			t.Fatal("call succeeded on an unreachable router")
		}
	}
	s.SetUnreachable(false)
	// The client waits out its own backoff (within the call's deadline),
	// so the first call after the router is back reconnects.
	if _, err := c.Identity(ctx(t)); err != nil {
		t.Fatalf("no reconnect: %v", err)
	}
	if s.Logins() != 2 {
		t.Errorf("Logins() = %d, want 2", s.Logins())
	}
}

func TestBackoffFailsFastWhenItOutlastsTheDeadline(t *testing.T) {
	s, c := newPair(t, routeros.Config{Timeout: 200 * time.Millisecond})
	routeros.SetBackoff(c, time.Hour, time.Hour)
	s.SetUnreachable(true)
	if _, err := c.Identity(ctx(t)); err == nil {
		t.Fatal("call succeeded on an unreachable router")
	}
	s.SetUnreachable(false)
	start := time.Now()
	_, err := c.Identity(ctx(t))
	if err == nil {
		t.Fatal("redialed during backoff")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("backoff error took %v, want it immediately", d)
	}
	if s.Logins() != 0 {
		t.Errorf("Logins() = %d", s.Logins())
	}
}

func TestTimeoutClosesConnection(t *testing.T) {
	s, c := newPair(t, routeros.Config{Timeout: 100 * time.Millisecond})
	if _, err := c.Identity(ctx(t)); err != nil {
		t.Fatal(err)
	}
	s.SetDelay(time.Second)
	start := time.Now()
	_, err := c.Identity(ctx(t))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("timed out after %v", d)
	}
	s.SetDelay(0)
	if name, err := c.Identity(ctx(t)); err != nil || name != "MikroTik" {
		t.Fatalf("after timeout: %q, %v", name, err)
	}
	if s.Logins() != 2 {
		t.Errorf("Logins() = %d, want a redial after the timeout", s.Logins())
	}
}

func TestCallerContextCancels(t *testing.T) {
	s, c := newPair(t, routeros.Config{Timeout: 10 * time.Second})
	s.SetDelay(5 * time.Second)
	cctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, err := c.Identity(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancel took %v", d)
	}
}

func TestWrongPassword(t *testing.T) {
	s := routerostest.NewServer()
	defer s.Close()
	c := routeros.NewClient(routeros.Config{Addr: s.Addr, Username: "admin", Password: "bad"}, zerolog.Nop())
	defer c.Close()
	_, err := c.Identity(ctx(t))
	var de *ros.DeviceError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want the router's trap", err)
	}
}

func TestLegacyLogin(t *testing.T) {
	s := routerostest.NewUnstartedServer("")
	s.LegacyLogin, s.Password = true, "old"
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := routeros.NewClient(routeros.Config{Addr: s.Addr, Username: "admin", Password: "old"}, zerolog.Nop())
	defer c.Close()
	if _, err := c.Identity(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	s, c := newPair(t, routeros.Config{})
	for i := range 20 {
		s.SetSession(routerostest.Session{Name: string(rune('a' + i)), SessionID: uint32(i), RxBytes: uint64(i)})
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				got, err := c.ActiveSessions(ctx(t))
				if err != nil || len(got) != 20 {
					t.Errorf("ActiveSessions() = %d, %v", len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()
	if s.Logins() != 1 {
		t.Errorf("Logins() = %d", s.Logins())
	}
}

func TestClose(t *testing.T) {
	s, c := newPair(t, routeros.Config{})
	if _, err := c.Identity(ctx(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.Identity(ctx(t)); !errors.Is(err, routeros.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	_ = s
}

func TestNormalizeSessionID(t *testing.T) {
	for in, want := range map[string]string{"0x8100000C": "8100000c", "8100000c": "8100000c", "0x1a": "0000001a", "": "", "zz": "zz"} {
		if got := routeros.NormalizeSessionID(in); got != want {
			t.Errorf("NormalizeSessionID(%q) = %q, want %q", in, got, want)
		}
	}
}

// tlsProxy terminates TLS with a throwaway self-signed certificate in front
// of the plain fake, as api-ssl sits in front of the same API service.
func tlsProxy(t *testing.T, backend string) string {
	t.Helper()
	addr, _, _ := tlsProxyCert(t, backend, "127.0.0.1")
	return addr
}

// tlsProxyCert is tlsProxy with a certificate for ip, returning the
// certificate and a count of the plaintext bytes the client got through
// to the API (a login, if any).
func tlsProxyCert(t *testing.T, backend, ip string) (string, *x509.Certificate, *atomic.Int64) {
	t.Helper()
	var plaintext atomic.Int64
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			front, err := ln.Accept()
			if err != nil {
				return
			}
			back, err := net.Dial("tcp", backend)
			if err != nil {
				front.Close()
				continue
			}
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if _, ok := src.(*tls.Conn); ok {
						plaintext.Add(int64(n))
					}
					if n > 0 {
						if _, werr := dst.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				dst.Close()
				src.Close()
			}
			wg.Go(func() { pipe(back, front) })
			wg.Go(func() { pipe(front, back) })
		}
	})
	return ln.Addr().String(), cert, &plaintext
}

// TestTLSVerifiedByDefault: a peer with a self-signed certificate (here for
// another address, as an impostor's would be) never receives the API user
// and password unless its certificate is pinned; a wrong pin is refused
// as well; --api-tls-insecure still connects.
func TestTLSVerifiedByDefault(t *testing.T) {
	s := routerostest.NewServer()
	defer s.Close()
	s.Username, s.Password = "admin", "api-secret"
	s.SetSession(routerostest.Session{Name: "tls-user", SessionID: 5})
	addr, cert, plaintext := tlsProxyCert(t, s.Addr, "192.0.2.7")
	base := routeros.Config{Addr: addr, Username: "admin", Password: "api-secret", TLS: true}

	c := routeros.NewClient(base, zerolog.Nop())
	defer c.Close()
	if _, err := c.ActiveSessions(ctx(t)); err == nil {
		t.Fatal("a self-signed certificate for another address was accepted by default")
	}
	wrong := base
	wrong.TLSFingerprint = strings.Repeat("ab", 32)
	cw := routeros.NewClient(wrong, zerolog.Nop())
	defer cw.Close()
	if _, err := cw.ActiveSessions(ctx(t)); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("wrong pin: %v", err)
	}
	if n := plaintext.Load(); n != 0 || s.Logins() != 0 {
		t.Fatalf("the unverified peer received %d bytes (%d logins): the password went out", n, s.Logins())
	}

	pinned := base
	fetched, err := routeros.FetchCertificate(ctx(t), addr)
	if err != nil {
		t.Fatal(err)
	}
	if routeros.CertFingerprint(fetched) != routeros.CertFingerprint(cert) {
		t.Fatalf("FetchCertificate gave another certificate")
	}
	// Written as an operator copies it: upper case with colons.
	var colons []string
	fp := strings.ToUpper(routeros.CertFingerprint(fetched))
	for i := 0; i < len(fp); i += 2 {
		colons = append(colons, fp[i:i+2])
	}
	pinned.TLSFingerprint = strings.Join(colons, ":")
	cp := routeros.NewClient(pinned, zerolog.Nop())
	defer cp.Close()
	if got, err := cp.ActiveSessions(ctx(t)); err != nil || len(got) != 1 || got[0].Name != "tls-user" {
		t.Fatalf("pinned: %v, %v", got, err)
	}
	if s.Logins() != 1 {
		t.Errorf("%d logins after pinning, want 1", s.Logins())
	}

	insecure := base
	insecure.TLSInsecure = true
	var logged strings.Builder
	ci := routeros.NewClient(insecure, zerolog.New(&logged))
	defer ci.Close()
	if _, err := ci.ActiveSessions(ctx(t)); err != nil {
		t.Fatalf("insecure: %v", err)
	}
	if !strings.Contains(logged.String(), "NOT verified") {
		t.Errorf("no warning for an unverified certificate: %s", logged.String())
	}
}

func TestTLS(t *testing.T) {
	s := routerostest.NewServer()
	defer s.Close()
	s.SetSession(routerostest.Session{Name: "tls-user", SessionID: 5})
	addr := tlsProxy(t, s.Addr)
	c := routeros.NewClient(routeros.Config{Addr: addr, Username: "admin", TLS: true, TLSInsecure: true}, zerolog.Nop())
	defer c.Close()
	got, err := c.ActiveSessions(ctx(t))
	if err != nil || len(got) != 1 || got[0].Name != "tls-user" {
		t.Fatalf("over TLS: %v, %v", got, err)
	}
	// With verification asked for, the self-signed certificate is refused.
	strict := routeros.NewClient(routeros.Config{Addr: addr, Username: "admin", TLS: true, TLSConfig: &tls.Config{}}, zerolog.Nop())
	defer strict.Close()
	if _, err := strict.Identity(ctx(t)); err == nil {
		t.Error("unverified certificate accepted with a TLSConfig")
	}
}

func TestDefaultPort(t *testing.T) {
	// Unroutable test address: only the dial error text is inspected.
	c := routeros.NewClient(routeros.Config{Addr: "192.0.2.1", Timeout: 50 * time.Millisecond}, zerolog.Nop())
	defer c.Close()
	_, err := c.Identity(ctx(t))
	if err == nil || !contains(err.Error(), "192.0.2.1:8728") {
		t.Errorf("err = %v, want it to name port 8728", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestGoRouterOSLogsThroughZerolog: at debug level the sentences the
// library sends reach our logger, with the login password hidden; at info
// level nothing of the library's is written.
func TestGoRouterOSLogsThroughZerolog(t *testing.T) {
	s := routerostest.NewUnstartedServer("")
	s.Username, s.Password = "api", "pass word"
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	for _, level := range []zerolog.Level{zerolog.DebugLevel, zerolog.InfoLevel} {
		var buf syncBuffer
		c := routeros.NewClient(routeros.Config{Addr: s.Addr, Username: "api", Password: "pass word"}, zerolog.New(&buf).Level(level))
		if _, err := c.ActiveSessions(ctx(t)); err != nil {
			t.Fatal(err)
		}
		c.Close()
		out := buf.String()
		if strings.Contains(out, "pass word") {
			t.Fatalf("level %s: the password reached the log:\n%s", level, out)
		}
		sent := strings.Contains(out, "go-routeros: RunArgsContext") && strings.Contains(out, "/ppp/active/print")
		if level == zerolog.DebugLevel && (!sent || !strings.Contains(out, "=password=[redacted]")) {
			t.Fatalf("debug log lacks the library's sentences or the redacted login:\n%s", out)
		}
		if level == zerolog.InfoLevel && strings.Contains(out, "go-routeros") {
			t.Fatalf("info log has the library's debug output:\n%s", out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the client's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
