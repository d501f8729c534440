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

// AccountingCounts is a snapshot of the accounting listener's counters.
type AccountingCounts struct {
	Received uint64
	// Outcomes counts packets by outcome (indexed by nettportal.Outcome);
	// OutcomeOK is also broken down by type below.
	Outcomes     [nettportal.NumOutcomes]uint64
	Batches      uint64
	CommitErrors uint64
	// Spooled records were acknowledged once durable in the local spool
	// (they are also in the ok counts); SpoolErrors are failed appends.
	Spooled, SpoolErrors uint64
	// Acknowledged packets by Acct-Status-Type.
	Starts, Interims, Stops, OnOffs uint64
	// QueueDepth is the number of records waiting for a batch, the retry
	// queue included; RetryDepth those in the retry queue.
	QueueDepth, RetryDepth int
	// Overload: shed packets by reason (fresh: waited past the delay
	// budget; retry_expired, retry_full, retry_over_quota: retransmissions
	// of shed packets dropped from the retry queue), and retransmissions
	// of shed packets queued for a retry and answered from it.
	ShedFresh, RetryExpired, RetryFull, RetryOverQuota uint64
	Retried, RetryAnswered                             uint64
	// Clocks is what the listener last saw of each router's clock.
	Clocks []nettportal.RouterClock
	// Reopened counts inferred closes undone by a later Interim.
	Reopened uint64
}

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

// accountingCollector turns the listener's atomic counters into metrics at
// scrape time.
type accountingCollector struct {
	read          func() AccountingCounts
	packets       *prometheus.Desc
	received      *prometheus.Desc
	batches       *prometheus.Desc
	commitErrs    *prometheus.Desc
	queue         *prometheus.Desc
	retryQueue    *prometheus.Desc
	shed          *prometheus.Desc
	retried       *prometheus.Desc
	retryAnswered *prometheus.Desc
	spooled       *prometheus.Desc
	spoolErrs     *prometheus.Desc
	skewed        *prometheus.Desc
	offset        *prometheus.Desc
	reopened      *prometheus.Desc
}

func newAccountingCollector(read func() AccountingCounts) *accountingCollector {
	return &accountingCollector{
		read: read,
		packets: prometheus.NewDesc("nettportal_radius_packets_total",
			"Accounting-Requests by outcome, each packet exactly one ("+outcomeHelp()+") and type (start, interim, stop, on_off for ok; unknown for the other outcomes).",
			[]string{"type", "outcome"}, nil),
		received: prometheus.NewDesc("nettportal_radius_received_total", "Datagrams read from the accounting socket.", nil, nil),
		batches:  prometheus.NewDesc("nettportal_radius_batches_total", "Accounting transactions committed.", nil, nil),
		commitErrs: prometheus.NewDesc("nettportal_radius_commit_errors_total",
			"Failed accounting commit attempts (each is retried until the commit timeout).", nil, nil),
		queue: prometheus.NewDesc("nettportal_radius_queue_records", "Accounting records waiting for a batch (the retry queue included).", nil, nil),
		retryQueue: prometheus.NewDesc("nettportal_radius_retry_queue_records",
			"Retransmissions of shed packets waiting in the retry queue, served when no fresh packet waits.", nil, nil),
		shed: prometheus.NewDesc("nettportal_radius_shed_total",
			"Packets dropped unanswered under overload by reason: fresh (waited past --max-queue-delay), retry_expired, retry_full, retry_over_quota (retransmissions of shed packets dropped from the retry queue). Their sum is the shed outcome.",
			[]string{"reason"}, nil),
		retried: prometheus.NewDesc("nettportal_radius_retried_total",
			"Retransmissions of shed packets put in the retry queue.", nil, nil),
		retryAnswered: prometheus.NewDesc("nettportal_radius_retry_answered_total",
			"Retransmissions of shed packets answered from the retry queue.", nil, nil),
		spooled: prometheus.NewDesc("nettportal_radius_spooled_records_total",
			"Records acknowledged once durable in the local spool because the database could not commit them in time (also counted as ok).", nil, nil),
		spoolErrs: prometheus.NewDesc("nettportal_radius_spool_errors_total", "Failed appends to the local spool.", nil, nil),
		skewed: prometheus.NewDesc("nettportal_radius_clock_skew_total",
			"Accounting-Requests whose Event-Timestamp was too far from receive time to be believed (receive time - Acct-Delay-Time used instead), per router.",
			[]string{"router"}, nil),
		offset: prometheus.NewDesc("nettportal_radius_router_clock_offset_seconds",
			"The router's last Event-Timestamp minus receive time (less Acct-Delay-Time): how far its clock is off, positive when ahead.",
			[]string{"router"}, nil),
		reopened: prometheus.NewDesc("nettportal_accounting_reopened_total",
			"Sessions closed by inference (NAS-Reboot, stale, reconciler, max-age) reopened by a later Interim.", nil, nil),
	}
}

// outcomeHelp names every outcome for the help text.
func outcomeHelp() string {
	var b strings.Builder
	for i, o := range nettportal.Outcomes() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(o.String())
		if o.Answered() {
			b.WriteString(" (answered)")
		}
	}
	return b.String()
}

func (c *accountingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.packets
	ch <- c.received
	ch <- c.batches
	ch <- c.commitErrs
	ch <- c.queue
	ch <- c.spooled
	ch <- c.spoolErrs
	ch <- c.skewed
	ch <- c.offset
	ch <- c.reopened
}

func (c *accountingCollector) Collect(ch chan<- prometheus.Metric) {
	var s AccountingCounts
	if c.read != nil {
		s = c.read()
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.packets, s.Starts, "start", "ok")
	counter(c.packets, s.Interims, "interim", "ok")
	counter(c.packets, s.Stops, "stop", "ok")
	counter(c.packets, s.OnOffs, "on_off", "ok")
	// Every other outcome from the one table, so none can be left out.
	for _, o := range nettportal.Outcomes() {
		if o != nettportal.OutcomeOK {
			counter(c.packets, s.Outcomes[o], "unknown", o.String())
		}
	}
	for _, rc := range s.Clocks {
		counter(c.skewed, rc.Skewed, rc.Router)
		ch <- prometheus.MustNewConstMetric(c.offset, prometheus.GaugeValue, rc.Offset.Seconds(), rc.Router)
	}
	counter(c.received, s.Received)
	counter(c.batches, s.Batches)
	counter(c.commitErrs, s.CommitErrors)
	counter(c.spooled, s.Spooled)
	counter(c.spoolErrs, s.SpoolErrors)
	counter(c.reopened, s.Reopened)
	ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(s.QueueDepth))
	ch <- prometheus.MustNewConstMetric(c.retryQueue, prometheus.GaugeValue, float64(s.RetryDepth))
	counter(c.shed, s.ShedFresh, "fresh")
	counter(c.shed, s.RetryExpired, "retry_expired")
	counter(c.shed, s.RetryFull, "retry_full")
	counter(c.shed, s.RetryOverQuota, "retry_over_quota")
	counter(c.retried, s.Retried)
	counter(c.retryAnswered, s.RetryAnswered)
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
