package main

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
	"github.com/nettportal/nettportal/metrics"
	"github.com/nettportal/nettportal/radius"
	"github.com/nettportal/nettportal/routeros"
)

// metricsHooks are gauge sources serve sets before it starts serving;
// /metrics reads them on every scrape, and a nil hook reads 0.
type metricsHooks struct {
	// wsClients: the WebSocket hub's connected browsers (anything with
	// Clients() int).
	wsClients metrics.ClientCounter
	// wsLimited: sockets the hub closed for a limit, by reason.
	wsLimited func() map[string]uint64
}

// newMetrics makes the server's registry: the accounting listener's
// counters read at scrape time, open sessions per router counted on
// scrape (cached), and the hooks' gauges.
func newMetrics(srv *server, log zerolog.Logger) *metrics.Metrics {
	return metrics.New(metrics.Sources{
		Accounting: func() metrics.AccountingCounts {
			c := accountingCounts(srv.acct)
			c.Reopened = srv.db.Stats.Reopened.Load()
			c.ViewerYields = srv.db.Viewers.Yields.Load()
			c.ViewerYieldSeconds = float64(srv.db.Viewers.YieldNanos.Load()) / 1e9
			c.ViewerRefused = srv.db.Viewers.Refused.Load()
			return c
		},
		SpoolDepth: func() int {
			if srv.spool == nil { // --spool-dir off
				return 0
			}
			return int(srv.spool.Depth())
		},
		WebSocketClients: func() int {
			if srv.hooks.wsClients == nil {
				return 0
			}
			return srv.hooks.wsClients.Clients()
		},
		WebSocketLimited: func() map[string]uint64 {
			if srv.hooks.wsLimited == nil {
				return nil
			}
			return srv.hooks.wsLimited()
		},
		OpenSessions: func(ctx context.Context) ([]metrics.RouterSessions, error) {
			counts, err := srv.db.OpenSessionCounts(ctx)
			if err != nil {
				return nil, err
			}
			out := make([]metrics.RouterSessions, len(counts))
			for i, c := range counts {
				out[i] = metrics.RouterSessions{Router: c.Router, Open: c.Open}
			}
			return out, nil
		},
		Log: log.With().Str("component", "metrics").Logger(),
	})
}

// accountingCounts snapshots the listener's atomic counters.
func accountingCounts(s *radius.Server) metrics.AccountingCounts {
	st := &s.Stats
	c := metrics.AccountingCounts{
		Received:     st.Received.Load(),
		Batches:      st.Batches.Load(),
		CommitErrors: st.CommitErrors.Load(),
		Spooled:      st.Spooled.Load(),
		SpoolErrors:  st.SpoolErrors.Load(),
		Starts:       st.Starts.Load(),
		Interims:     st.Interims.Load(),
		Stops:        st.Stops.Load(),
		OnOffs:       st.OnOffs.Load(),
		QueueDepth:   s.QueueDepth(),
		RetryDepth:   s.RetryDepth(),
		ShedFresh:    st.ShedFresh.Load(), RetryExpired: st.RetryExpired.Load(),
		RetryFull: st.RetryFull.Load(), RetryOverQuota: st.RetryOverQuota.Load(),
		Retried: st.Retried.Load(), RetryAnswered: st.RetryAnswered.Load(),
		Clocks: s.Clocks(),
	}
	for _, o := range nettportal.Outcomes() {
		c.Outcomes[o] = st.Outcome(o)
	}
	return c
}

// observeReconcile feeds Reconciler.OnResult into the metrics.
func observeReconcile(m *metrics.Metrics) func(nettportal.Router, routeros.Result) {
	return func(r nettportal.Router, res routeros.Result) {
		m.ObserveReconcile(r.Name, metrics.ReconcileOutcome{
			Reachable: res.Reachable, Err: res.Err, Closed: int(res.Closed), Added: res.Added, Refreshed: res.Refreshed,
		})
	}
}
