package routeros

import (
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
)

// Pool keeps one API client per router, so the reconciler and the
// disconnect fallback share a logged-in connection. A router whose API
// settings change gets a new client. The zero value is ready to use.
type Pool struct {
	// Timeout per command; zero: the Client default.
	Timeout time.Duration
	Log     zerolog.Logger

	mu      sync.Mutex
	clients map[int64]pooledClient
}

type pooledClient struct {
	cfg    Config
	client *Client
}

// ConfigFor is the API configuration of a router.
func ConfigFor(r nettportal.Router, timeout time.Duration) Config {
	return Config{Addr: r.APIAddr, Username: r.APIUser, Password: r.APIPassword, TLS: r.APITLS, Timeout: timeout,
		TLSFingerprint: r.APITLSFingerprint, TLSCAFile: r.APITLSCAFile, TLSInsecure: r.APITLSInsecure}
}

// Client returns the router's client, creating or replacing it as needed.
func (p *Pool) Client(r nettportal.Router) *Client {
	cfg := ConfigFor(r, p.Timeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.clients == nil {
		p.clients = map[int64]pooledClient{}
	}
	if pc, ok := p.clients[r.ID]; ok {
		if pc.cfg == cfg {
			return pc.client
		}
		pc.client.Close()
	}
	c := NewClient(cfg, p.Log.With().Str("router", r.Name).Logger())
	p.clients[r.ID] = pooledClient{cfg: cfg, client: c}
	return c
}

// Close closes every client.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, pc := range p.clients {
		pc.client.Close()
		delete(p.clients, id)
	}
}

func parseAddr(s string) (netip.Addr, error) { return netip.ParseAddr(s) }
