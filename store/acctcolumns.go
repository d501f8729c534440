package store

import (
	"math"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nettportal/nettportal"
)

// recordColumn is one array a batch of records is sent as: arrays through
// unnest are the fastest way to send many rows through pgx in one
// statement. The statements' unnest type lists and aliases and the
// arguments are all generated from recordColumns, so they cannot disagree
// by position.
type recordColumn struct {
	name    string // the alias in the statements: u.<name>
	sqlType string // PostgreSQL type of the array's elements
	to      int    // the statements it is sent to: toFull, toNarrow
	array   func(capacity int) columnArray
}

// columnContext is what column values depend on beyond the record.
type columnContext struct {
	loc        *time.Location        // billing days are in it
	routerText map[netip.Addr]string // a batch has few routers and many records
}

func newColumnContext(loc *time.Location) *columnContext {
	return &columnContext{loc: loc, routerText: map[netip.Addr]string{}}
}

type columnArray interface {
	add(r *nettportal.AccountingRecord, cc *columnContext)
	value() any
}

// typedArray keeps its values as the Go type pgx encodes for the column's
// PostgreSQL type ([]int32 for int[], []pgtype.Int8 for bigint[] with NULLs).
type typedArray[T any] struct {
	vals []T
	get  func(*nettportal.AccountingRecord, *columnContext) T
}

func (a *typedArray[T]) add(r *nettportal.AccountingRecord, cc *columnContext) {
	a.vals = append(a.vals, a.get(r, cc))
}

func (a *typedArray[T]) value() any { return a.vals }

// Where a column goes.
const (
	toFull   = 1 << iota // the full upsert
	toNarrow             // the narrow update
	toBoth   = toFull | toNarrow
)

func column[T any](name, sqlType string, to int, get func(*nettportal.AccountingRecord, *columnContext) T) recordColumn {
	return recordColumn{name: name, sqlType: sqlType, to: to,
		array: func(n int) columnArray { return &typedArray[T]{vals: make([]T, 0, n), get: get} }}
}

// recordColumns are the fields of a record the accounting statements read,
// in argument order. A narrow record (an Interim or Stop for a session that
// has its row) needs only what such a record can change, plus carries.
var recordColumns = []recordColumn{
	column("status", "int", toBoth, func(r *nettportal.AccountingRecord, _ *columnContext) int32 { return int32(r.Status) }),
	column("nasid", "bigint", toBoth, func(r *nettportal.AccountingRecord, _ *columnContext) int64 { return r.RouterID }),
	column("eventtime", "timestamptz", toBoth, func(r *nettportal.AccountingRecord, _ *columnContext) time.Time { return r.EventTime }),
	column("uniqueid", "text", toBoth, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.UniqueID }),
	column("sessionid", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.SessionID }),
	column("username", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.Username }),
	column("realm", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.Realm }),
	column("nasip", "text", toFull, func(r *nettportal.AccountingRecord, cc *columnContext) string {
		text, ok := cc.routerText[r.NASIP]
		if !ok {
			text = addrString(r.NASIP)
			cc.routerText[r.NASIP] = text
		}
		return text
	}),
	column("nasident", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.NASIdent }),
	column("nasportid", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.NASPortID }),
	column("nasporttype", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.NASPortTyp }),
	column("sessiontime", "bigint", toBoth, func(r *nettportal.AccountingRecord, _ *columnContext) pgtype.Int8 { return optU32(r.SessionTime) }),
	column("inoctets", "bigint", toBoth, func(r *nettportal.AccountingRecord, _ *columnContext) pgtype.Int8 { return optU64(r.InputOctets) }),
	column("outoctets", "bigint", toBoth, func(r *nettportal.AccountingRecord, _ *columnContext) pgtype.Int8 { return optU64(r.OutputOctets) }),
	column("inpackets", "bigint", toBoth, func(r *nettportal.AccountingRecord, _ *columnContext) pgtype.Int8 { return optU32(r.InputPackets) }),
	column("outpackets", "bigint", toBoth, func(r *nettportal.AccountingRecord, _ *columnContext) pgtype.Int8 { return optU32(r.OutputPackets) }),
	column("authentic", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.Authentic }),
	column("connectinfo", "text", toBoth, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.ConnectInfo }),
	column("called", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.CalledStation }),
	column("calling", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.CallingStation }),
	column("cause", "text", toBoth, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.TerminateCause }),
	column("servicetype", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.ServiceType }),
	column("framedprotocol", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.FramedProtocol }),
	column("framedip", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return addrString(r.FramedIP) }),
	column("framedipv6", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return addrString(r.FramedIPv6Addr) }),
	column("framedipv6prefix", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.FramedIPv6Pfx }),
	column("delegated", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.DelegatedPfx }),
	column("ifaceid", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.FramedIfaceID }),
	column("class", "text", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.Class }),
	column("interim", "bigint", toBoth, func(r *nettportal.AccountingRecord, _ *columnContext) pgtype.Int8 { return optU32(r.InterimSeconds) }),
	column("profile", "text", toBoth, func(r *nettportal.AccountingRecord, _ *columnContext) string { return r.Profile }),
	column("fromapi", "bool", toFull, func(r *nettportal.AccountingRecord, _ *columnContext) bool { return r.FromAPI }),
	// The billing day of the event, in the usage time zone.
	column("day", "date", toBoth, func(r *nettportal.AccountingRecord, cc *columnContext) time.Time {
		y, m, d := r.EventTime.In(cc.loc).Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}),
	column("carries", "int", toNarrow, func(r *nettportal.AccountingRecord, _ *columnContext) int32 { return carries(r) }),
}

// descriptiveField is a radacct column that describes a session rather than
// its progress: the first record that has it fills it, later ones never
// change it. The narrow update cannot fill one, so a record carrying a field
// its row lacks goes through the full upsert instead.
type descriptiveField struct {
	column string // in radacct
	has    func(*nettportal.AccountingRecord) bool
}

// descriptiveFields, in the order of the carries bits (bit i is field i).
var descriptiveFields = []descriptiveField{
	{"realm", func(r *nettportal.AccountingRecord) bool { return r.Realm != "" }},
	{"nasportid", func(r *nettportal.AccountingRecord) bool { return r.NASPortID != "" }},
	{"nasporttype", func(r *nettportal.AccountingRecord) bool { return r.NASPortTyp != "" }},
	{"acctauthentic", func(r *nettportal.AccountingRecord) bool { return r.Authentic != "" }},
	{"calledstationid", func(r *nettportal.AccountingRecord) bool { return r.CalledStation != "" }},
	{"callingstationid", func(r *nettportal.AccountingRecord) bool { return r.CallingStation != "" }},
	{"servicetype", func(r *nettportal.AccountingRecord) bool { return r.ServiceType != "" }},
	{"framedprotocol", func(r *nettportal.AccountingRecord) bool { return r.FramedProtocol != "" }},
	{"framedipaddress", func(r *nettportal.AccountingRecord) bool { return r.FramedIP.IsValid() }},
	{"framedipv6address", func(r *nettportal.AccountingRecord) bool { return r.FramedIPv6Addr.IsValid() }},
	{"framedipv6prefix", func(r *nettportal.AccountingRecord) bool { return r.FramedIPv6Pfx != "" }},
	{"framedinterfaceid", func(r *nettportal.AccountingRecord) bool { return r.FramedIfaceID != "" }},
	{"delegatedipv6prefix", func(r *nettportal.AccountingRecord) bool { return r.DelegatedPfx != "" }},
	{"class", func(r *nettportal.AccountingRecord) bool { return r.Class != "" }},
	{"nas_id", func(*nettportal.AccountingRecord) bool { return true }},
	{"nasidentifier", func(r *nettportal.AccountingRecord) bool { return r.NASIdent != "" }},
}

// carries says which descriptive fields a record has, one bit per field of
// descriptiveFields.
func carries(r *nettportal.AccountingRecord) int32 {
	var bits int32
	for i, f := range descriptiveFields {
		if f.has(r) {
			bits |= 1 << i
		}
	}
	return bits
}

// recordArrays holds a statement's records as its columns' arrays.
type recordArrays struct {
	arrays []columnArray
	cc     *columnContext
	n      int
}

func newRecordArrays(cols []recordColumn, capacity int, cc *columnContext) *recordArrays {
	a := &recordArrays{arrays: make([]columnArray, len(cols)), cc: cc}
	for i, c := range cols {
		a.arrays[i] = c.array(capacity)
	}
	return a
}

func (a *recordArrays) add(r *nettportal.AccountingRecord) {
	for _, arr := range a.arrays {
		arr.add(r, a.cc)
	}
	a.n++
}

func (a *recordArrays) len() int { return a.n }

// args are the statement's arguments, in the order of its unnest.
func (a *recordArrays) args() []any {
	args := make([]any, len(a.arrays))
	for i, arr := range a.arrays {
		args[i] = arr.value()
	}
	return args
}

// columnsFor is the columns sent to a statement (toFull or toNarrow), in
// argument order.
func columnsFor(statement int) []recordColumn {
	var cols []recordColumn
	for _, c := range recordColumns {
		if c.to&statement != 0 {
			cols = append(cols, c)
		}
	}
	return cols
}

var (
	fullColumns   = columnsFor(toFull)
	narrowColumns = columnsFor(toNarrow)
)

// optU32 and optU64 are values, not pointers: a pointer per counter was
// eight allocations per record.
func optU32(v *uint32) pgtype.Int8 {
	if v == nil {
		return pgtype.Int8{}
	}
	return pgtype.Int8{Int64: int64(*v), Valid: true}
}

func optU64(v *uint64) pgtype.Int8 {
	if v == nil {
		return pgtype.Int8{}
	}
	if *v > math.MaxInt64 {
		// No real session total gets here (decode refuses them); clamped
		// rather than stored as a negative bigint.
		return pgtype.Int8{Int64: math.MaxInt64, Valid: true}
	}
	return pgtype.Int8{Int64: int64(*v), Valid: true}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
