package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

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
	// ViewerYields counts viewer queries that waited for accounting to
	// catch up, ViewerYieldSeconds how long in all.
	ViewerYields       uint64
	ViewerYieldSeconds float64
	// ViewerRefused counts viewer queries refused (503) while accounting
	// was behind: heavy ones, and others that waited too long for their
	// turn.
	ViewerRefused uint64
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
	viewerYields  *prometheus.Desc
	viewerYieldS  *prometheus.Desc
	viewerRefused *prometheus.Desc
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
			"Retransmissions of shed packets waiting in the retry queue, served when no fresh packet waits (while overloaded: and no commit is in flight).", nil, nil),
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
		viewerYields: prometheus.NewDesc("nettportal_viewer_yields_total",
			"Viewer queries (session lists, live-view snapshots, history, customers, usage, export pages) that waited because accounting was behind (--viewer-yield).", nil, nil),
		viewerYieldS: prometheus.NewDesc("nettportal_viewer_yield_seconds_total",
			"Time viewer queries spent waiting for accounting to catch up.", nil, nil),
		viewerRefused: prometheus.NewDesc("nettportal_viewer_refused_total",
			"Viewer queries answered 503 while accounting was behind: heavy ones (history, deep pages) still behind after --viewer-yield, and others that waited as long as --statement-timeout for their turn to query one at a time.", nil, nil),
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
	ch <- c.viewerYields
	ch <- c.viewerYieldS
	ch <- c.viewerRefused
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
	counter(c.viewerYields, s.ViewerYields)
	counter(c.viewerRefused, s.ViewerRefused)
	ch <- prometheus.MustNewConstMetric(c.viewerYieldS, prometheus.CounterValue, s.ViewerYieldSeconds)
	ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(s.QueueDepth))
	ch <- prometheus.MustNewConstMetric(c.retryQueue, prometheus.GaugeValue, float64(s.RetryDepth))
	counter(c.shed, s.ShedFresh, "fresh")
	counter(c.shed, s.RetryExpired, "retry_expired")
	counter(c.shed, s.RetryFull, "retry_full")
	counter(c.shed, s.RetryOverQuota, "retry_over_quota")
	counter(c.retried, s.Retried)
	counter(c.retryAnswered, s.RetryAnswered)
}
