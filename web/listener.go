package web

import (
	"net"
	"sync"
)

// LimitListener caps the connections open at once from one client
// address: a single host trickling slow requests must not take every file
// descriptor and shut out /healthz, other operators and accounting.
// Connections over the cap are closed as soon as they are accepted.
// perAddress <= 0 means no cap.
func LimitListener(ln net.Listener, perAddress int) net.Listener {
	if perAddress <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, max: perAddress, open: map[string]int{}}
}

type limitListener struct {
	net.Listener
	max  int
	mu   sync.Mutex
	open map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host, _, err := net.SplitHostPort(c.RemoteAddr().String())
		if err != nil {
			host = c.RemoteAddr().String()
		}
		l.mu.Lock()
		if l.open[host] >= l.max {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open[host]++
		l.mu.Unlock()
		return &limitConn{Conn: c, l: l, host: host}, nil
	}
}

type limitConn struct {
	net.Conn
	l    *limitListener
	host string
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.open[c.host]--; c.l.open[c.host] <= 0 {
			delete(c.l.open, c.host)
		}
		c.l.mu.Unlock()
	})
	return err
}
