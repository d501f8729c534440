package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Rows without nas_id (FreeRADIUS's, and the closed history of a migrated
// database, which is not rewritten) belong to the nas row whose nasname
// covers their nasipaddress, the longest prefix winning, none on a tie:
// nas_router_id() in SQL (migration 0007). Readers resolve them so:
//   - one row's router: rowRouterSQL, per row shown;
//   - a router's rows (?router=): its own rows by nas_id, plus the unowned
//     rows in the address ranges it owns, computed here from the nas
//     prefixes, so the query stays index range scans (radacct_unowned_idx)
//     and no row pays a function call; a page takes the top rows of each
//     half and merges them (sessionSQL.topIDs).

// rowRouterSQL is the router id of radacct row r, resolved as above.
const rowRouterSQL = `coalesce(r.nas_id, nas_router_id(r.nasipaddress))`

// addrRange is an inclusive range of addresses.
type addrRange struct{ lo, hi netip.Addr }

// routerScope is what ?router= selects: nas row id (0: none) and the
// ranges of addresses whose unowned rows are its.
type routerScope struct {
	id     int64
	ranges []addrRange
}

// routerScope finds the nas row idOrName names (id, then shortname, then
// nasname, as before) and the addresses it owns rows without nas_id of.
func (db *DB) routerScope(ctx context.Context, idOrName string) (routerScope, error) {
	var sc routerScope
	var prefix *string
	err := db.Pool.QueryRow(ctx, `SELECT id, nasname_prefix::text FROM nas
		WHERE id::text = $1 OR shortname = $1 OR nasname = $1
		ORDER BY (id::text = $1) DESC, (shortname = $1) DESC, id LIMIT 1`, idOrName).Scan(&sc.id, &prefix)
	if errors.Is(err, pgx.ErrNoRows) {
		return sc, nil
	}
	if err != nil {
		return sc, fmt.Errorf("find router %q: %w", idOrName, err)
	}
	if prefix == nil {
		return sc, nil // a hostname covers no address
	}
	own, err := netip.ParsePrefix(*prefix)
	if err != nil {
		return sc, fmt.Errorf("router %q: prefix %q: %w", idOrName, *prefix, err)
	}
	rows, err := db.Pool.Query(ctx, `SELECT nasname_prefix::text FROM nas
		WHERE id <> $1 AND nasname_prefix <<= $2::cidr`, sc.id, own.String())
	if err != nil {
		return sc, fmt.Errorf("router %q: nas prefixes: %w", idOrName, err)
	}
	others, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (netip.Prefix, error) {
		var s string
		if err := row.Scan(&s); err != nil {
			return netip.Prefix{}, err
		}
		return netip.ParsePrefix(s)
	})
	if err != nil {
		return sc, fmt.Errorf("router %q: nas prefixes: %w", idOrName, err)
	}
	sc.ranges = ownedRanges(own, others)
	return sc, nil
}

// ownedRanges is own less the prefixes of other nas rows inside it (more
// specific ones win their addresses); nothing when another row has the
// same prefix (a tie: nobody owns those rows).
func ownedRanges(own netip.Prefix, others []netip.Prefix) []addrRange {
	own = own.Masked()
	var subs []netip.Prefix
	for _, o := range others {
		o = o.Masked()
		if o.Addr().BitLen() != own.Addr().BitLen() || !own.Contains(o.Addr()) || o.Bits() < own.Bits() {
			continue
		}
		if o.Bits() == own.Bits() {
			return nil
		}
		subs = append(subs, o)
	}
	slices.SortFunc(subs, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var out []addrRange
	cur, last := own.Addr(), lastAddr(own)
	for _, s := range subs {
		lo, hi := s.Addr(), lastAddr(s)
		if hi.Less(cur) {
			continue // inside a sub-prefix already taken out
		}
		if cur.Less(lo) {
			out = append(out, addrRange{cur, lo.Prev()})
		}
		if hi == last {
			return out
		}
		cur = hi.Next()
	}
	return append(out, addrRange{cur, last})
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

// ownerConds is the router filter of scope (nil: none) as alternatives,
// each served by an index of its own: the router's own rows by nas_id, and
// the rows without nas_id in the addresses it owns. arg numbers the
// parameters.
func (sc *routerScope) ownerConds(arg func(any) string) []string {
	if sc == nil {
		return nil
	}
	if sc.id == 0 {
		return []string{"false"}
	}
	own := "r.nas_id = " + arg(sc.id)
	if len(sc.ranges) == 0 {
		return []string{own}
	}
	var conds []string
	for _, rg := range sc.ranges {
		if rg.lo == rg.hi {
			conds = append(conds, "r.nasipaddress = "+arg(rg.lo.String())+"::inet")
		} else {
			conds = append(conds, "(r.nasipaddress >= "+arg(rg.lo.String())+"::inet AND r.nasipaddress <= "+arg(rg.hi.String())+"::inet)")
		}
	}
	return []string{own, "r.nas_id IS NULL AND (" + strings.Join(conds, " OR ") + ")"}
}

// argList numbers query parameters from 1.
type argList struct{ args []any }

func (a *argList) add(v any) string {
	a.args = append(a.args, v)
	return "$" + strconv.Itoa(len(a.args))
}
