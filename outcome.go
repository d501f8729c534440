package nettportal

import "context"

// Outcome is what became of one Accounting-Request. Every packet the
// listener reads gets exactly one; /metrics labels come from Outcomes, so a
// new outcome cannot be left out of them.
type Outcome uint8

// The outcomes. OutcomeOK and OutcomeQuarantined are answered (the record
// is durable); every other one leaves the packet unanswered. Stores report OutcomeOK,
// OutcomeQuarantined and OutcomeForeignSession per record; the rest are
// the listener's.
const (
	// OutcomeOK: committed (to radacct or the spool) and answered.
	OutcomeOK Outcome = iota
	// OutcomeDuplicate: a retransmission, answered from the cache or
	// dropped while its original is pending.
	OutcomeDuplicate
	// OutcomeUnknownRouter: the source address is no router.
	OutcomeUnknownRouter
	// OutcomeBadAuthenticator: the Request Authenticator does not match the
	// router's secret.
	OutcomeBadAuthenticator
	// OutcomeMalformed: not a decodable Accounting-Request, or values that
	// cannot be a real session (a counter total at or above 2^63).
	OutcomeMalformed
	// OutcomeQueueFull: the listener's queue was full.
	OutcomeQueueFull
	// OutcomeOverQuota: the router had its share of the queue waiting.
	OutcomeOverQuota
	// OutcomeGivenUp: the database failed past the commit timeout.
	OutcomeGivenUp
	// OutcomeSendFailed: committed, but the answer could not be sent (the
	// router retransmits and gets it from the cache).
	OutcomeSendFailed
	// OutcomeQuarantined: the database refused the record; it is kept in
	// the quarantine table and answered.
	OutcomeQuarantined
	// OutcomeForeignSession: the record names a session another router
	// owns; refused, counted and not answered (nothing of it is durable).
	OutcomeForeignSession
	// OutcomeShed: waited longer than the listener's MaxQueueDelay before
	// its batch began; dropped so what is answered stays inside the
	// router's timeout (its retransmission comes back to a shorter queue).
	OutcomeShed

	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	OutcomeOK:               "ok",
	OutcomeDuplicate:        "duplicate",
	OutcomeUnknownRouter:    "unknown_router",
	OutcomeBadAuthenticator: "bad_authenticator",
	OutcomeMalformed:        "malformed",
	OutcomeQueueFull:        "queue_full",
	OutcomeOverQuota:        "over_quota",
	OutcomeGivenUp:          "given_up",
	OutcomeSendFailed:       "send_failed",
	OutcomeQuarantined:      "quarantined",
	OutcomeForeignSession:   "foreign_session",
	OutcomeShed:             "shed",
}

// NumOutcomes is the number of outcomes, for arrays indexed by Outcome.
const NumOutcomes = int(numOutcomes)

// String is the outcome's /metrics label.
func (o Outcome) String() string {
	if o >= numOutcomes {
		return "invalid"
	}
	return outcomeNames[o]
}

// Answered says whether a packet with this outcome gets an
// Accounting-Response.
func (o Outcome) Answered() bool {
	return o == OutcomeOK || o == OutcomeQuarantined
}

// Outcomes lists every outcome in order.
func Outcomes() []Outcome {
	out := make([]Outcome, numOutcomes)
	for i := range out {
		out[i] = Outcome(i)
	}
	return out
}

// AccountingResultStore is an AccountingStore that says, per record, what
// became of it: results[i] is recs[i]'s outcome (OutcomeOK,
// OutcomeQuarantined or OutcomeForeignSession); a nil slice means every
// record is OutcomeOK. An error means nothing of the batch is durable. The
// listener and the spool replay use it when the store has it.
type AccountingResultStore interface {
	ApplyAccountingResults(ctx context.Context, recs []AccountingRecord) ([]Outcome, error)
}

// ApplyWithResults applies recs through st, with per-record results when st
// is an AccountingResultStore; a plain store's success is OutcomeOK for
// every record (nil results).
func ApplyWithResults(ctx context.Context, st AccountingStore, recs []AccountingRecord) ([]Outcome, error) {
	if rs, ok := st.(AccountingResultStore); ok {
		return rs.ApplyAccountingResults(ctx, recs)
	}
	return nil, st.ApplyAccounting(ctx, recs)
}

// AcknowledgedResultStore applies records that were acknowledged already
// (the spool replay's): nothing of them may be refused, so a store that
// would refuse one (another router's session) keeps it in its quarantine
// instead and says OutcomeQuarantined.
type AcknowledgedResultStore interface {
	ApplyAcknowledgedResults(ctx context.Context, recs []AccountingRecord) ([]Outcome, error)
}
