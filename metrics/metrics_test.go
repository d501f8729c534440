package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nettportal/nettportal"
)

func body(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, b)
	}
	return string(b)
}

func has(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("missing %q", l)
		}
	}
}

type nopAudit struct{ n int }

func (a *nopAudit) RecordAudit(context.Context, *nettportal.AuditEntry) error { a.n++; return nil }
func (a *nopAudit) Audit(context.Context, int, int) ([]nettportal.AuditEntry, error) {
	return nil, nil
}

func TestHooksAndScrapeTimeReads(t *testing.T) {
	counts := AccountingCounts{Received: 10, Starts: 3, QueueDepth: 7, RetryDepth: 2, ShedFresh: 11, RetryExpired: 5,
		RetryFull: 1, RetryOverQuota: 3, Retried: 9, RetryAnswered: 4,
		Clocks: []nettportal.RouterClock{{RouterID: 1, Router: "core-1", Offset: -90 * time.Second, Skewed: 4}}}
	counts.Outcomes[nettportal.OutcomeDuplicate] = 2
	counts.Outcomes[nettportal.OutcomeQueueFull] = 1
	queries := 0
	m := New(Sources{
		Accounting: func() AccountingCounts { return counts },
		OpenSessions: func(context.Context) ([]RouterSessions, error) {
			queries++
			return []RouterSessions{{"core-1", 42}, {"edge", 0}}, nil
		},
		OpenSessionsTTL: time.Hour,
		Log:             zerolog.Nop(),
	})
	m.ObserveBatch(5, 3*time.Millisecond, nil)
	m.ObserveBatch(5, time.Second, errors.New("down"))
	audit := &nopAudit{}
	a := m.WrapAudit(audit)
	_ = a.RecordAudit(context.Background(), &nettportal.AuditEntry{Action: "disconnect", Method: "radius", Result: "nak"})
	_ = a.RecordAudit(context.Background(), &nettportal.AuditEntry{Action: "disconnect", Method: "routeros", Result: "ack"})
	m.ObserveReconcile("core-1", ReconcileOutcome{Reachable: true, Closed: 2})
	m.ObserveReconcile("core-1", ReconcileOutcome{Reachable: false, Err: errors.New("dial")})

	text := body(t, m)
	has(t, text,
		"nettportal_radius_received_total 10",
		`nettportal_radius_packets_total{outcome="ok",type="start"} 3`,
		`nettportal_radius_packets_total{outcome="duplicate",type="unknown"} 2`,
		`nettportal_radius_packets_total{outcome="queue_full",type="unknown"} 1`,
		`nettportal_radius_clock_skew_total{router="core-1"} 4`,
		`nettportal_radius_router_clock_offset_seconds{router="core-1"} -90`,
		"nettportal_radius_queue_records 7",
		"nettportal_radius_retry_queue_records 2",
		`nettportal_radius_shed_total{reason="fresh"} 11`,
		`nettportal_radius_shed_total{reason="retry_expired"} 5`,
		`nettportal_radius_shed_total{reason="retry_full"} 1`,
		`nettportal_radius_shed_total{reason="retry_over_quota"} 3`,
		"nettportal_radius_retried_total 9",
		"nettportal_radius_retry_answered_total 4",
		"nettportal_radius_batch_records_count 1",
		"nettportal_radius_batch_records_sum 5",
		`nettportal_radius_commit_seconds_count{result="error"} 1`,
		`nettportal_control_results_total{action="disconnect",method="radius",result="nak"} 1`,
		`nettportal_control_results_total{action="disconnect",method="routeros",result="ack"} 1`,
		`nettportal_reconcile_results_total{result="ok",router="core-1"} 1`,
		`nettportal_reconcile_results_total{result="unreachable",router="core-1"} 1`,
		`nettportal_reconcile_sessions_total{change="closed",router="core-1"} 2`,
		`nettportal_open_sessions{router="core-1"} 42`,
		`nettportal_open_sessions{router="edge"} 0`,
		"nettportal_spool_records 0",
		"nettportal_websocket_clients 0",
	)
	if audit.n != 2 {
		t.Errorf("audit store got %d entries, want 2", audit.n)
	}
	counts.Received = 11
	text = body(t, m)
	has(t, text, "nettportal_radius_received_total 11")
	if queries != 1 {
		t.Errorf("open sessions counted %d times within the TTL, want 1", queries)
	}
}

func TestOpenSessionsErrorKeepsTheRest(t *testing.T) {
	m := New(Sources{
		OpenSessions: func(context.Context) ([]RouterSessions, error) { return nil, errors.New("database down") },
		SpoolDepth:   func() int { return 9 },
		Log:          zerolog.Nop(),
	})
	text := body(t, m)
	has(t, text, "nettportal_spool_records 9")
	if strings.Contains(text, "nettportal_open_sessions{") {
		t.Error("open sessions reported although the count failed")
	}
}

func TestRegistriesAreIndependent(t *testing.T) {
	a, b := New(Sources{}), New(Sources{})
	a.ObserveControl("disconnect", "radius", "ack")
	if strings.Contains(body(t, b), "nettportal_control_results_total{") {
		t.Error("one server's metrics leaked into another's registry")
	}
}

// TestEveryOutcomeIsExposed iterates the outcome table: an outcome added to
// it shows up in /metrics with its own count, whatever it is.
func TestEveryOutcomeIsExposed(t *testing.T) {
	var counts AccountingCounts
	for _, o := range nettportal.Outcomes() {
		counts.Outcomes[o] = uint64(100 + int(o))
	}
	counts.Starts, counts.Interims, counts.Stops, counts.OnOffs = 1, 2, 3, 4
	text := body(t, New(Sources{Accounting: func() AccountingCounts { return counts }}))
	for _, o := range nettportal.Outcomes() {
		if o == nettportal.OutcomeOK {
			has(t, text, `nettportal_radius_packets_total{outcome="ok",type="interim"} 2`)
			continue
		}
		has(t, text, fmt.Sprintf(`nettportal_radius_packets_total{outcome=%q,type="unknown"} %d`, o.String(), 100+int(o)))
	}
	for _, name := range []string{"over_quota", "quarantined", "foreign_session"} {
		if !strings.Contains(text, `outcome="`+name+`"`) {
			t.Errorf("no %s outcome in /metrics", name)
		}
	}
}
