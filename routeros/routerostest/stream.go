package routerostest

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/nettportal/nettportal/routeros"
)

// startStream runs a follow/listen/interval print until it is cancelled
// or the connection ends.
func (c *conn) startStream(req request, menu string, followOnly bool) bool {
	var interval time.Duration
	if v, ok := req.attrs["interval"]; ok {
		d, err := parseInterval(v)
		if err != nil || d <= 0 {
			return c.trap(req, 1, "invalid interval")
		}
		interval = d
	}
	// Validate the query up front so a bad one traps instead of streaming.
	if _, ok, alive := c.selectRows(req, menu); !ok {
		return alive
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := &stream{cancel: cancel, done: make(chan struct{})}
	c.smu.Lock()
	if _, dup := c.streams[req.tag]; dup {
		c.smu.Unlock()
		cancel()
		return c.trap(req, -1, "duplicate tag")
	}
	c.streams[req.tag] = st
	c.smu.Unlock()
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		defer close(st.done)
		defer cancel()
		c.runStream(ctx, req, menu, followOnly, interval)
		c.smu.Lock()
		delete(c.streams, req.tag)
		c.smu.Unlock()
	}()
	return true
}

func parseInterval(v string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	return routeros.ParseUptime(v)
}

func (c *conn) runStream(ctx context.Context, req request, menu string, followOnly bool, interval time.Duration) {
	pl := req.proplist()
	last := make(map[string]string)
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	first := true
	for {
		c.s.mu.Lock()
		changed := c.s.change
		c.s.mu.Unlock()
		rows, _, _ := c.selectRows(req, menu)
		seen := make(map[string]bool, len(rows))
		for i, r := range rows {
			key, ok := r.get(".id")
			if !ok {
				key = "#" + strconv.Itoa(i)
			}
			seen[key] = true
			p := project(r, pl)
			str := p.String()
			send := !(first && followOnly) && (interval > 0 || last[key] != str)
			last[key] = str
			if send && !c.send(req, "!re", p.words()...) {
				return
			}
		}
		for key := range last {
			if !seen[key] {
				delete(last, key)
				if strings.HasPrefix(key, "*") && !c.send(req, "!re", "=.id="+key, "=.dead=true") {
					return
				}
			}
		}
		if first {
			c.s.streamLooked(req.path)
		}
		first = false
		select {
		case <-ctx.Done():
			if c.send(req, "!trap", "=category=2", "=message=interrupted") {
				c.finish(req)
			}
			return
		case <-c.done:
			return
		case <-changed:
		case <-tick:
		}
	}
}

// cancel stops the stream with =tag= (or all streams without it); the
// cancelled command gets !trap interrupted and !done before /cancel's !done.
func (c *conn) cancel(req request) bool {
	tag, hasTag := req.attrs["tag"]
	c.smu.Lock()
	var targets []*stream
	for t, st := range c.streams {
		if !hasTag || t == tag {
			targets = append(targets, st)
		}
	}
	c.smu.Unlock()
	if hasTag && len(targets) == 0 {
		return c.trap(req, 0, "no such command or tag")
	}
	for _, st := range targets {
		st.cancel()
		select {
		case <-st.done:
		case <-c.done:
			return false
		}
	}
	return c.finish(req)
}
