package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nettportal/nettportal"
)

const routerColumns = `id, nasname, shortname, secret, coa_port, api_addr, api_user, api_password, api_tls,
	coalesce(description, ''), interim_seconds, api_tls_fingerprint, api_tls_ca_file, api_tls_insecure`

func (db *DB) scanRouter(row pgx.Row) (nettportal.Router, error) {
	r, nasname, err := db.scanNAS(row)
	if err != nil {
		return r, err
	}
	if !r.IP.IsValid() {
		// Not a router here (a range, a hostname): like no router at all
		// for a caller that wants one, such as a disconnect.
		return r, fmt.Errorf("router %q: %s: %w", r.Name, skipReason(nasname), nettportal.ErrNotFound)
	}
	return r, nil
}

// scanNAS reads a nas row; r.IP stays invalid when nasname is not a
// single address (FreeRADIUS also takes ranges and hostnames).
func (db *DB) scanNAS(row pgx.Row) (r nettportal.Router, nasname string, err error) {
	var interim int
	err = row.Scan(&r.ID, &nasname, &r.Name, &r.Secret, &r.CoAPort, &r.APIAddr, &r.APIUser, &r.APIPassword,
		&r.APITLS, &r.Description, &interim, &r.APITLSFingerprint, &r.APITLSCAFile, &r.APITLSInsecure)
	if err != nil {
		return r, nasname, err
	}
	if r.Secret, err = db.sealer.open(r.Secret); err != nil {
		return r, nasname, fmt.Errorf("router %q: RADIUS secret: %w", r.Name, err)
	}
	if r.APIPassword, err = db.sealer.open(r.APIPassword); err != nil {
		return r, nasname, fmt.Errorf("router %q: API password: %w", r.Name, err)
	}
	if ip, err := netip.ParseAddr(strings.TrimSpace(nasname)); err == nil {
		r.IP = ip.Unmap()
	}
	r.InterimInterval = time.Duration(interim) * time.Second
	return r, nasname, nil
}

func skipReason(nasname string) string {
	if _, err := netip.ParsePrefix(strings.TrimSpace(nasname)); err == nil {
		return "CIDR range (FreeRADIUS clients): a router needs its own address: add each router with router add"
	}
	return "hostname: add the address with router add"
}

// Routers returns every router, ordered by name. `nas` rows that cannot
// be a router are left out; SkippedNAS lists them with the reason.
func (db *DB) Routers(ctx context.Context) ([]nettportal.Router, error) {
	routers, _, err := db.classifyNAS(ctx)
	return routers, err
}

// SkippedNAS returns the `nas` rows Routers leaves out, and why.
func (db *DB) SkippedNAS(ctx context.Context) ([]nettportal.SkippedNAS, error) {
	_, skipped, err := db.classifyNAS(ctx)
	return skipped, err
}

// classifyNAS splits the nas table into usable routers and skipped rows.
// Two rows with one address are both skipped: which router a packet from
// it means is unknown (the nas_id trigger leaves such rows unowned too).
// Of rows sharing a name the first keeps it, as names select routers in
// the CLI and the API.
func (db *DB) classifyNAS(ctx context.Context) ([]nettportal.Router, []nettportal.SkippedNAS, error) {
	rows, err := db.Pool.Query(ctx, "SELECT "+routerColumns+" FROM nas ORDER BY id")
	if err != nil {
		return nil, nil, fmt.Errorf("list routers: %w", err)
	}
	defer rows.Close()
	type entry struct {
		r       nettportal.Router
		nasname string
	}
	var all []entry
	byAddr := map[netip.Addr][]int64{}
	for rows.Next() {
		r, nasname, err := db.scanNAS(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("list routers: %w", err)
		}
		all = append(all, entry{r, nasname})
		if r.IP.IsValid() {
			byAddr[r.IP] = append(byAddr[r.IP], r.ID)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("list routers: %w", err)
	}
	var routers []nettportal.Router
	var skipped []nettportal.SkippedNAS
	nameOwner := map[string]int64{}
	for _, e := range all {
		skip := func(reason string) {
			skipped = append(skipped, nettportal.SkippedNAS{ID: e.r.ID, NASName: e.nasname, ShortName: e.r.Name, Reason: reason})
		}
		switch ids := byAddr[e.r.IP]; {
		case !e.r.IP.IsValid():
			skip(skipReason(e.nasname))
		case len(ids) > 1:
			skip(fmt.Sprintf("address shared by nas rows %v: change or remove all but one", ids))
		case nameOwner[e.r.Name] != 0:
			skip(fmt.Sprintf("name shared with router id %d: rename one (router rm and router add)", nameOwner[e.r.Name]))
		default:
			nameOwner[e.r.Name] = e.r.ID
			routers = append(routers, e.r)
		}
	}
	slices.SortStableFunc(routers, func(a, b nettportal.Router) int { return strings.Compare(a.Name, b.Name) })
	return routers, skipped, nil
}

// Router finds a router by id, name or IP address.
func (db *DB) Router(ctx context.Context, idOrName string) (nettportal.Router, error) {
	r, err := db.scanRouter(db.Pool.QueryRow(ctx, "SELECT "+routerColumns+
		" FROM nas WHERE id::text = $1 OR shortname = $1 OR nasname = $1 ORDER BY (id::text = $1) DESC LIMIT 1", idOrName))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("router %q: %w", idOrName, nettportal.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("find router %q: %w", idOrName, err)
	}
	return r, nil
}

func validateRouter(r *nettportal.Router) error {
	switch {
	case r.Name == "":
		return fmt.Errorf("router name is required: %w", nettportal.ErrInvalid)
	case !r.IP.IsValid():
		return fmt.Errorf("router %q needs an IP address: %w", r.Name, nettportal.ErrInvalid)
	case r.Secret == "":
		return fmt.Errorf("router %q needs a RADIUS secret: %w", r.Name, nettportal.ErrInvalid)
	case r.CoAPort < 0 || r.CoAPort > 65535:
		return fmt.Errorf("router %q: CoA port %d out of range: %w", r.Name, r.CoAPort, nettportal.ErrInvalid)
	}
	if r.CoAPort == 0 {
		r.CoAPort = nettportal.DefaultCoAPort
	}
	if r.InterimInterval <= 0 {
		r.InterimInterval = nettportal.DefaultInterimInterval
	}
	return nil
}

// sealCredentials returns the RADIUS secret and API password as stored.
// The RADIUS secret stays in plaintext, as FreeRADIUS keeps it in this
// same `nas` table: a FreeRADIUS that reads its clients from here (often
// the one still doing authentication) must keep working. The RouterOS API
// password, which controls the router, is encrypted. Either is read in
// both forms, so rows from any version stay readable.
func (db *DB) sealCredentials(r *nettportal.Router) (secret, apiPassword string, err error) {
	if apiPassword, err = db.sealValue(r.APIPassword); err != nil {
		return "", "", err
	}
	return r.Secret, apiPassword, nil
}

func uniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// CreateRouter adds a router and sets r.ID.
func (db *DB) CreateRouter(ctx context.Context, r *nettportal.Router) error {
	if err := validateRouter(r); err != nil {
		return err
	}
	secret, apiPassword, err := db.sealCredentials(r)
	if err != nil {
		return fmt.Errorf("create router %q: %w", r.Name, err)
	}
	err = db.Pool.QueryRow(ctx, `INSERT INTO nas (nasname, shortname, type, secret, coa_port, api_addr, api_user,
		api_password, api_tls, description, interim_seconds, api_tls_fingerprint, api_tls_ca_file, api_tls_insecure)
		VALUES ($1, $2, 'mikrotik', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id`,
		r.IP.String(), r.Name, secret, r.CoAPort, r.APIAddr, r.APIUser, apiPassword, r.APITLS,
		r.Description, int(r.InterimInterval/time.Second), r.APITLSFingerprint, r.APITLSCAFile, r.APITLSInsecure).Scan(&r.ID)
	if uniqueViolation(err) {
		return fmt.Errorf("router %q or address %s exists already: %w", r.Name, r.IP, nettportal.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create router %q: %w", r.Name, err)
	}
	if err := db.adoptOpenRows(ctx, r); err != nil {
		return fmt.Errorf("create router %q: %w", r.Name, err)
	}
	return nil
}

// adoptOpenRows gives the router the open sessions of its address that
// have none (FreeRADIUS wrote them before the router was added here) or
// that a nas range holding the address had (the trigger gave them to the
// range; an address is more specific). Closed history is left as it was:
// readers resolve it (ownership.go).
func (db *DB) adoptOpenRows(ctx context.Context, r *nettportal.Router) error {
	_, err := db.Pool.Exec(ctx, `UPDATE radacct SET nas_id = nas_router_id(nasipaddress)
		WHERE acctstoptime IS NULL AND nasipaddress = $1::inet
			AND (nas_id IS NULL OR nas_id IN (SELECT id FROM nas WHERE nasname_prefix >> $1::inet))
			AND nas_router_id(nasipaddress) IS NOT NULL`, r.IP.String())
	if err != nil {
		return fmt.Errorf("adopt open sessions of %s: %w", r.IP, err)
	}
	return nil
}

// UpdateRouter changes every field of the router with r.ID.
func (db *DB) UpdateRouter(ctx context.Context, r *nettportal.Router) error {
	if err := validateRouter(r); err != nil {
		return err
	}
	// Every update writes both credentials again, so a plaintext row from
	// before encryption is encrypted by its next change.
	secret, apiPassword, err := db.sealCredentials(r)
	if err != nil {
		return fmt.Errorf("update router %q: %w", r.Name, err)
	}
	tag, err := db.Pool.Exec(ctx, `UPDATE nas SET nasname = $2, shortname = $3, secret = $4, coa_port = $5,
		api_addr = $6, api_user = $7, api_password = $8, api_tls = $9, description = $10, interim_seconds = $11,
		api_tls_fingerprint = $12, api_tls_ca_file = $13, api_tls_insecure = $14
		WHERE id = $1`,
		r.ID, r.IP.String(), r.Name, secret, r.CoAPort, r.APIAddr, r.APIUser, apiPassword, r.APITLS,
		r.Description, int(r.InterimInterval/time.Second), r.APITLSFingerprint, r.APITLSCAFile, r.APITLSInsecure)
	if uniqueViolation(err) {
		return fmt.Errorf("router %q or address %s exists already: %w", r.Name, r.IP, nettportal.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("update router %q: %w", r.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("router %d: %w", r.ID, nettportal.ErrNotFound)
	}
	if err := db.adoptOpenRows(ctx, r); err != nil {
		return fmt.Errorf("update router %q: %w", r.Name, err)
	}
	return nil
}

// DeleteRouter removes a router by id, name or IP. Its accounting history
// stays in radacct.
func (db *DB) DeleteRouter(ctx context.Context, idOrName string) error {
	r, err := db.Router(ctx, idOrName)
	if err != nil {
		return err
	}
	if _, err := db.Pool.Exec(ctx, "DELETE FROM nas WHERE id = $1", r.ID); err != nil {
		return fmt.Errorf("delete router %q: %w", idOrName, err)
	}
	return nil
}

// RangeRouter is where a Disconnect or CoA goes for a session whose nas
// row (rangeID) is a CIDR range of FreeRADIUS clients rather than a
// router: the NAS at the session's nasipaddress, which the range must
// contain, with the range's secret. Its port is the row's coa_port when
// set to other than the default, else FreeRADIUS's `ports` column when it
// holds a UDP port (daloRADIUS keeps the NAS's CoA port there), else 3799.
// The result has no RouterOS API: one API address cannot stand for every
// NAS of a range. Errors wrap nettportal.ErrNotFound when the row is gone,
// is not a range (a hostname) or does not contain nasIP.
func (db *DB) RangeRouter(ctx context.Context, rangeID int64, nasIP netip.Addr) (nettportal.Router, error) {
	var r nettportal.Router
	var nasname string
	var ports *int32
	err := db.Pool.QueryRow(ctx, `SELECT id, nasname, shortname, secret, coa_port, ports FROM nas WHERE id = $1`, rangeID).
		Scan(&r.ID, &nasname, &r.Name, &r.Secret, &r.CoAPort, &ports)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("nas row %d: %w", rangeID, nettportal.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("find nas row %d: %w", rangeID, err)
	}
	prefix, perr := netip.ParsePrefix(strings.TrimSpace(nasname))
	if perr != nil {
		return r, fmt.Errorf("router %q: %s: %w", r.Name, skipReason(nasname), nettportal.ErrNotFound)
	}
	nasIP = nasIP.Unmap()
	if !nasIP.IsValid() || !prefix.Contains(nasIP) {
		return r, fmt.Errorf("session's NAS address %v is not in range %q (%s): %w", nasIP, r.Name, nasname, nettportal.ErrNotFound)
	}
	if r.Secret, err = db.sealer.open(r.Secret); err != nil {
		return r, fmt.Errorf("range %q: RADIUS secret: %w", r.Name, err)
	}
	if r.CoAPort == nettportal.DefaultCoAPort && ports != nil && *ports > 0 && *ports <= 65535 {
		r.CoAPort = int(*ports)
	}
	r.IP = nasIP
	return r, nil
}
