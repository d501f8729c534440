// Package metrics exposes NettPortal's Prometheus metrics. Each server makes
// its own registry (never the global default one). Counters the accounting
// listener already keeps are read at scrape time, not counted twice; what
// has no counter elsewhere (batch sizes, commit latency, control and
// reconciliation results) is observed through hooks.
package metrics

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
)

// RouterSessions is the number of open sessions of one router.
type RouterSessions struct {
	Router string
	Open   int64
}

// ClientCounter is anything that knows how many clients are connected (the
// WebSocket hub).
type ClientCounter interface {
	Clients() int
}

// Sources are what the metrics read at scrape time. Every field may be nil;
// a nil gauge reads 0.
type Sources struct {
	// Accounting returns the accounting listener's counters.
	Accounting func() AccountingCounts
	// SpoolDepth returns the records in the local spool (accounting kept on
	// disk while the database is unreachable). Nil until the spool exists:
	// the gauge reads 0.
	SpoolDepth func() int
	// WebSocketClients returns the connected browsers; nil reads 0.
	WebSocketClients func() int
	// WebSocketLimited returns the sockets closed for a limit, by reason;
	// nil reads nothing.
	WebSocketLimited func() map[string]uint64
	// OpenSessions counts open sessions per router. It runs on a scrape at
	// most once per OpenSessionsTTL; the result is cached in between.
	OpenSessions func(ctx context.Context) ([]RouterSessions, error)
	// OpenSessionsTTL is how long a count is reused. Zero: 5s.
	OpenSessionsTTL time.Duration
	// Log receives collection errors.
	Log zerolog.Logger
}

// Metrics is one server's registry and the instruments its hooks feed.
type Metrics struct {
	reg           *prometheus.Registry
	batchSize     prometheus.Histogram
	commitSeconds *prometheus.HistogramVec
	queueDelay    prometheus.Histogram
	control       *prometheus.CounterVec
	reconcile     *prometheus.CounterVec
	reconciled    *prometheus.CounterVec
	log           zerolog.Logger
}

// New makes a registry with the Go runtime and process collectors, the
// scrape-time collectors over src, and the hook-fed instruments.
func New(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: src.Log,
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nettportal_radius_batch_records",
			Help:    "Accounting records per committed transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192},
		}),
		commitSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nettportal_radius_commit_seconds",
			Help:    "Time to commit one accounting batch, by result (ok or error; errors are retried).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		queueDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nettportal_radius_queue_delay_seconds",
			Help:    "How long accounting packets waited in the queue before their batch started (shed ones included).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .2, .3, .5, 1, 2.5},
		}),
		control: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nettportal_control_results_total",
			Help: "Disconnect and CoA requests by action (disconnect, rate-limit), method (radius, routeros) and result (ack, nak, timeout, error).",
		}, []string{"action", "method", "result"}),
		reconcile: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nettportal_reconcile_results_total",
			Help: "RouterOS API reconciliation passes by router and result (ok, error, unreachable).",
		}, []string{"router", "result"}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nettportal_reconcile_sessions_total",
			Help: "Sessions changed by reconciliation, by router and change (closed, added, refreshed).",
		}, []string{"router", "change"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.batchSize, m.commitSeconds, m.queueDelay, m.control, m.reconcile, m.reconciled,
		newAccountingCollector(src.Accounting),
		gaugeFunc("nettportal_spool_records", "Accounting records in the local spool waiting for the database (0 while no spool is configured).", src.SpoolDepth),
		gaugeFunc("nettportal_websocket_clients", "Browsers connected to the live view.", src.WebSocketClients),
		&labeledCounters{read: src.WebSocketLimited, desc: prometheus.NewDesc("nettportal_websocket_limited_total",
			"WebSockets held to a limit, by reason: closed for per_user, per_address (too many sockets) and subscribe_rate; snapshot_busy counts subscribes that waited for a free snapshot query (the socket stays open).",
			[]string{"reason"}, nil)},
	)
	if src.OpenSessions != nil {
		ttl := src.OpenSessionsTTL
		if ttl <= 0 {
			ttl = 5 * time.Second
		}
		m.reg.MustRegister(newOpenSessionsCollector(src.OpenSessions, ttl, src.Log))
	}
	return m
}

// Registry is the server's registry, for extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format. A collector
// that fails (the database is down) leaves its metrics out; the rest is
// still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		ErrorLog:          zerologPrinter{m.log},
		Registry:          m.reg,
		EnableOpenMetrics: false,
	})
}

// ObserveBatch records one commit attempt of the accounting listener; it
// has radius.Server.OnBatch's signature.
func (m *Metrics) ObserveBatch(size int, commit time.Duration, err error) {
	if err != nil {
		m.commitSeconds.WithLabelValues("error").Observe(commit.Seconds())
		return
	}
	m.commitSeconds.WithLabelValues("ok").Observe(commit.Seconds())
	m.batchSize.Observe(float64(size))
}

// ObserveQueueDelay records how long one accounting packet waited for its
// batch; it has radius.Server.OnDequeue's signature.
func (m *Metrics) ObserveQueueDelay(d time.Duration) { m.queueDelay.Observe(d.Seconds()) }

// ObserveControl records one Disconnect or CoA outcome.
func (m *Metrics) ObserveControl(action, method, result string) {
	if method == "" {
		method = "none"
	}
	if result == "" {
		result = "unknown"
	}
	m.control.WithLabelValues(action, method, result).Inc()
}

// ReconcileOutcome is one router's reconciliation pass.
type ReconcileOutcome struct {
	Reachable                bool
	Err                      error
	Closed, Added, Refreshed int
}

// ObserveReconcile records one router's reconciliation pass.
func (m *Metrics) ObserveReconcile(router string, o ReconcileOutcome) {
	result := "ok"
	switch {
	case !o.Reachable:
		result = "unreachable"
	case o.Err != nil:
		result = "error"
	}
	m.reconcile.WithLabelValues(router, result).Inc()
	for change, n := range map[string]int{"closed": o.Closed, "added": o.Added, "refreshed": o.Refreshed} {
		// Add(0) still creates the series, so rate() works from the first pass.
		m.reconciled.WithLabelValues(router, change).Add(float64(max(n, 0)))
	}
}

// WrapAudit returns an audit store that counts every recorded Disconnect
// and CoA attempt by action, method and result, then records it in a.
// The controller records each attempt exactly once, whoever asked for it
// (the page, the API, a bulk disconnect), so this counts them all.
func (m *Metrics) WrapAudit(a nettportal.AuditStore) nettportal.AuditStore {
	return &countingAudit{AuditStore: a, m: m}
}

type countingAudit struct {
	nettportal.AuditStore
	m *Metrics
}

func (c *countingAudit) RecordAudit(ctx context.Context, e *nettportal.AuditEntry) error {
	c.m.ObserveControl(e.Action, e.Method, e.Result)
	return c.AuditStore.RecordAudit(ctx, e)
}

func gaugeFunc(name, help string, f func() int) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
		if f == nil {
			return 0
		}
		return float64(f())
	})
}

// labeledCounters reads counters by one label at scrape time.
type labeledCounters struct {
	read func() map[string]uint64
	desc *prometheus.Desc
}

func (c *labeledCounters) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *labeledCounters) Collect(ch chan<- prometheus.Metric) {
	if c.read == nil {
		return
	}
	for label, v := range c.read() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), label)
	}
}

// openSessionsCollector runs the grouped count on a scrape, at most once
// per ttl, so many scrapers (two Prometheus servers, a dashboard) cost one
// query.
type openSessionsCollector struct {
	count func(ctx context.Context) ([]RouterSessions, error)
	ttl   time.Duration
	log   zerolog.Logger
	desc  *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	cached []RouterSessions
}

func newOpenSessionsCollector(count func(ctx context.Context) ([]RouterSessions, error), ttl time.Duration, log zerolog.Logger) *openSessionsCollector {
	return &openSessionsCollector{count: count, ttl: ttl, log: log, desc: prometheus.NewDesc("nettportal_open_sessions",
		"Open sessions (acctstoptime IS NULL) per router, counted on scrape and cached for a few seconds.",
		[]string{"router"}, nil)}
}

func (c *openSessionsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *openSessionsCollector) Collect(ch chan<- prometheus.Metric) {
	rows, err := c.rows()
	if err != nil {
		c.log.Warn().Err(err).Msg("metrics: count open sessions")
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(r.Open), r.Router)
	}
}

func (c *openSessionsCollector) rows() ([]RouterSessions, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != nil && time.Since(c.at) < c.ttl {
		return c.cached, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := c.count(ctx)
	if err != nil {
		return nil, err
	}
	if rows == nil {
		rows = []RouterSessions{}
	}
	c.cached, c.at = rows, time.Now()
	return rows, nil
}

// zerologPrinter adapts the logger to promhttp's error log.
type zerologPrinter struct{ log zerolog.Logger }

func (p zerologPrinter) Println(v ...any) {
	p.log.Warn().Msg("metrics: " + strings.TrimSpace(fmt.Sprintln(v...)))
}
