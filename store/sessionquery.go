package store

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nettportal/nettportal"
)

// sessionSort maps an API sort name to SQL. Nothing from the request
// reaches the SQL text except through this switch. Indexed columns keep
// PostgreSQL's default NULLS placement so a partial index can serve the
// ORDER BY ... LIMIT; the others put empty values last in both directions.
// joins tells whether the expression needs the nas and customers joins.
func sessionSort(name string) (expr string, indexed, joins, ok bool) {
	switch name {
	case "username":
		return "r.username", true, false, true
	case "customer":
		return "c.name", false, true, true
	case "router":
		return "n.shortname", false, true, true
	case "ip":
		return "r.framedipaddress", true, false, true
	case "profile":
		return "coalesce(r.profile, c.profile, '')", false, true, true
	case "started_at":
		return "r.acctstarttime", true, false, true
	case "uptime":
		return "coalesce(r.acctstoptime, now()) - r.acctstarttime", false, false, true
	case "input_octets":
		return "r.acctinputoctets", false, false, true
	case "output_octets":
		return "r.acctoutputoctets", false, false, true
	case "input_bps":
		return "r.input_bps", false, false, true
	case "output_bps":
		return "r.output_bps", false, false, true
	}
	return "", false, false, false
}

// SessionSorts lists the sort names Sessions accepts.
func SessionSorts() []string {
	return []string{"username", "customer", "router", "ip", "profile", "started_at", "uptime",
		"input_octets", "output_octets", "input_bps", "output_bps"}
}

const sessionColumns = `r.radacctid, r.acctsessionid, r.acctuniqueid, coalesce(r.username, ''), coalesce(c.name, ''),
	coalesce(r.nas_id, n.id, 0), coalesce(n.shortname, ''), host(r.nasipaddress), coalesce(host(r.framedipaddress), ''),
	coalesce(r.callingstationid, ''), coalesce(r.profile, c.profile, ''), coalesce(r.calledstationid, ''),
	coalesce(r.nasportid, ''), r.acctstarttime, r.acctupdatetime, r.acctstoptime, coalesce(r.acctsessiontime, 0),
	coalesce(r.acctinputoctets, 0), coalesce(r.acctoutputoctets, 0), coalesce(r.input_bps, 0), coalesce(r.output_bps, 0),
	coalesce(r.acctterminatecause, ''), coalesce(r.closed_by, ''), r.has_start, coalesce(r.acctinterval, 0)`

// sessionJoins names a row's router and customer. A row without nas_id
// shows the router its address resolves to (see ownership.go); the
// function runs only for such rows, and only for the rows shown.
const sessionJoins = `
	LEFT JOIN nas n ON n.id = ` + rowRouterSQL + `
	LEFT JOIN customers c ON c.username = r.username`

const sessionFrom = ` FROM radacct r` + sessionJoins

func scanSession(row pgx.Row) (nettportal.Session, error) {
	var s nettportal.Session
	var nasIP, ip string
	var start, update *time.Time
	err := row.Scan(&s.ID, &s.AcctSessionID, &s.UniqueID, &s.Username, &s.Customer, &s.RouterID, &s.Router,
		&nasIP, &ip, &s.MAC, &s.Profile, &s.Service, &s.Interface, &start, &update, &s.StoppedAt,
		&s.SessionTime, &s.InputOctets, &s.OutputOctets, &s.InputBps, &s.OutputBps, &s.TerminateCause,
		&s.ClosedBy, &s.HasStart, &s.InterimSeconds)
	if err != nil {
		return s, err
	}
	// Addresses come as text: host() drops the /32 that inet would carry.
	s.NASIP, _ = netip.ParseAddr(nasIP)
	s.IP, _ = netip.ParseAddr(ip)
	if start != nil {
		s.StartedAt = *start
	}
	if update != nil {
		s.UpdatedAt = *update
	}
	return s, nil
}

// likePattern makes a substring pattern that matches q literally.
func likePattern(q string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(q) + "%"
}

// ipQuery reads q as an address, a prefix, or a dotted prefix of whole
// octets ("100.64" is 100.64.0.0/16), which is how operators type a subnet.
func ipQuery(q string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(q); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(q); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	parts := strings.Split(strings.TrimSuffix(q, "."), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return netip.Prefix{}, false
	}
	var b [4]byte
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil || p == "" || (len(p) > 1 && p[0] == '0') {
			return netip.Prefix{}, false
		}
		b[i] = byte(n)
	}
	return netip.PrefixFrom(netip.AddrFrom4(b), 8*len(parts)), true
}

// sessionWhere builds the WHERE clause of f without its router (plan
// tests); args are numbered from 1.
func sessionWhere(f nettportal.SessionFilter, broad bool) (string, []any) {
	q := sessionQuery(f, nil, broad)
	return q.where(""), q.args
}

// sessionSQL is the selection of a session query: conds on radacct r, and
// the router filter as alternatives (owners), each one index scan.
type sessionSQL struct {
	owners []string
	conds  []string
	args   []any
}

// sessionQuery builds the selection of f, its router resolved to scope;
// broad says the search matches more usernames and customers than
// broadSearchMatches (see sessionConds).
func sessionQuery(f nettportal.SessionFilter, scope *routerScope, broad bool) sessionSQL {
	var a argList
	owners := scope.ownerConds(a.add)
	conds := sessionConds(f, &a, broad)
	return sessionSQL{owners: owners, conds: conds, args: a.args}
}

// where is the WHERE clause of the rows of one owner alternative ("": of
// any of them, or of all rows when there is no router filter).
func (q sessionSQL) where(owner string) string {
	conds := q.conds
	if owner != "" {
		conds = append([]string{owner}, conds...)
	} else if len(q.owners) > 0 {
		conds = append([]string{"(" + strings.Join(q.owners, " OR ") + ")"}, conds...)
	}
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// topIDs selects the radacctids of the rows [offset, offset+limit) in the
// order of key and dir (then radacctid); joins adds sessionJoins for a key
// that needs them, and extra is ANDed to the conditions. With two owner
// alternatives (a router's own rows and its unowned ones) each is ordered
// and cut on its own and the two merged: an OR would make PostgreSQL read
// the router's whole history to sort it, where each half alone walks its
// (nas_id, acctstarttime) or (nasipaddress, acctstarttime) index and stops
// at the limit.
func (q sessionSQL) topIDs(key, dir, nulls string, joins bool, limit, offset int, extra string) string {
	from := " FROM radacct r"
	if joins {
		from += sessionJoins
	}
	order := func(k, id string) string { return " ORDER BY " + k + " " + dir + nulls + ", " + id + " " + dir }
	page := func(l, o int) string {
		out := " LIMIT " + strconv.Itoa(l)
		if o > 0 {
			out += " OFFSET " + strconv.Itoa(o)
		}
		return out
	}
	if len(q.owners) < 2 {
		where := q.where("")
		if extra != "" {
			where = andWhere(where, extra)
		}
		return "SELECT r.radacctid" + from + where + order(key, "r.radacctid") + page(limit, offset)
	}
	var parts []string
	for _, o := range q.owners {
		where := q.where(o)
		if extra != "" {
			where = andWhere(where, extra)
		}
		parts = append(parts, "(SELECT r.radacctid, "+key+" AS k"+from+where+order(key, "r.radacctid")+page(limit+offset, 0)+")")
	}
	return "SELECT u.radacctid FROM (" + strings.Join(parts, " UNION ALL ") + ") u" + order("u.k", "u.radacctid") + page(limit, offset)
}

func andWhere(where, cond string) string {
	if where == "" {
		return " WHERE " + cond
	}
	return where + " AND " + cond
}

func sessionConds(f nettportal.SessionFilter, al *argList, broad bool) []string {
	var conds []string
	arg := al.add
	if !f.Closed {
		conds = append(conds, "r.acctstoptime IS NULL")
	}
	if q := strings.TrimSpace(f.Query); q != "" {
		if p, ok := ipQuery(q); ok {
			conds = append(conds, "r.framedipaddress <<= "+arg(p.String())+"::inet")
		} else {
			// The usernames a search matches come from the dictionary of
			// radacct's usernames (acct_usernames, by substring through its
			// trigram index) and from the customers whose name matches;
			// radacct is then probed by username through its btrees. As
			// ANY(ARRAY(...)), not a join or IN, so each username is an
			// index probe. But the array is a parameter, which PostgreSQL
			// compares element by element wherever it filters rather than
			// probes an index: with every customer matching (q=ustomer,
			// 50,000 names) a count over the open rows ran for over a
			// minute. A broad match is an IN instead, which filters through
			// a hash (the rows it matches are many, so the index gains
			// little).
			matched := func(a string) string {
				return "SELECT username FROM acct_usernames WHERE username ILIKE " + a +
					" UNION SELECT username FROM customers WHERE name ILIKE " + a
			}
			match := func(a string) string {
				if broad {
					return "r.username IN (" + matched(a) + ")"
				}
				return "r.username = ANY(ARRAY(" + matched(a) + "))"
			}
			pattern := likePattern(q)
			if !f.Closed || broad {
				// A broad match filters through a hash, which needs no
				// index, so it is not split in halves either: under an OR
				// an IN cannot become a join.
				conds = append(conds, match(arg(pattern)))
			} else {
				// Open and closed rows have their own username indexes
				// (partial): the planner uses one only where the query
				// states its predicate, so say it for each half. The
				// halves take the pattern as two parameters, or the planner
				// factors the match out of the OR and no index applies.
				conds = append(conds, "((r.acctstoptime IS NULL AND "+match(arg(pattern))+") OR (r.acctstoptime IS NOT NULL AND "+match(arg(pattern))+"))")
			}
		}
	}
	if f.IDs != nil {
		conds = append(conds, "r.radacctid = ANY("+arg(f.IDs)+"::bigint[])")
	}
	if !f.From.IsZero() {
		conds = append(conds, "r.acctstarttime >= "+arg(f.From))
	}
	if !f.To.IsZero() {
		conds = append(conds, "r.acctstarttime < "+arg(f.To))
	}
	return conds
}

// sessionOrder returns the ORDER BY clause for f, whether it needs the
// nas and customers joins, or an ErrInvalid error.
func sessionOrder(f nettportal.SessionFilter) (string, bool, error) {
	key, dir, nulls, joins, err := sessionOrderBy(f)
	if err != nil {
		return "", false, err
	}
	return " ORDER BY " + key + " " + dir + nulls + ", r.radacctid " + dir, joins, nil
}

// sessionOrderBy returns f's sort key, direction and NULLS placement.
func sessionOrderBy(f nettportal.SessionFilter) (key, dir, nulls string, joins bool, err error) {
	sortName, order := f.Sort, strings.ToLower(f.Order)
	if sortName == "" {
		sortName = "started_at"
		if order == "" {
			order = "desc"
		}
	}
	if order == "" {
		order = "asc"
	}
	if order != "asc" && order != "desc" {
		return "", "", "", false, fmt.Errorf("order %q is not asc or desc: %w", f.Order, nettportal.ErrInvalid)
	}
	expr, indexed, joins, ok := sessionSort(sortName)
	if !ok {
		return "", "", "", false, fmt.Errorf("cannot sort by %q (one of %s): %w", sortName, strings.Join(SessionSorts(), ", "), nettportal.ErrInvalid)
	}
	if sortName == "uptime" && !f.Closed {
		// Open sessions only: the longest up is the earliest started, and
		// the start index serves that order.
		expr, indexed = "r.acctstarttime", true
		if order == "asc" {
			order = "desc"
		} else {
			order = "asc"
		}
	}
	dir = strings.ToUpper(order)
	if !indexed {
		nulls = " NULLS LAST"
	}
	return expr, dir, nulls, joins, nil
}
