package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nettportal/nettportal"
)

const routerColumns = `id, nasname, shortname, secret, coa_port, api_addr, api_user, api_password, api_tls,
	coalesce(description, ''), interim_seconds, api_tls_fingerprint, api_tls_ca_file, api_tls_insecure`

func (db *DB) scanRouter(row pgx.Row) (nettportal.Router, error) {
	var r nettportal.Router
	var ip string
	var interim int
	err := row.Scan(&r.ID, &ip, &r.Name, &r.Secret, &r.CoAPort, &r.APIAddr, &r.APIUser, &r.APIPassword,
		&r.APITLS, &r.Description, &interim, &r.APITLSFingerprint, &r.APITLSCAFile, &r.APITLSInsecure)
	if err != nil {
		return r, err
	}
	if r.Secret, err = db.sealer.open(r.Secret); err != nil {
		return r, fmt.Errorf("router %q: RADIUS secret: %w", r.Name, err)
	}
	if r.APIPassword, err = db.sealer.open(r.APIPassword); err != nil {
		return r, fmt.Errorf("router %q: API password: %w", r.Name, err)
	}
	r.IP, err = netip.ParseAddr(ip)
	if err != nil {
		return r, fmt.Errorf("router %q has a bad nasname %q: %w", r.Name, ip, err)
	}
	r.InterimInterval = time.Duration(interim) * time.Second
	return r, nil
}

// Routers returns every router, ordered by name.
func (db *DB) Routers(ctx context.Context) ([]nettportal.Router, error) {
	rows, err := db.Pool.Query(ctx, "SELECT "+routerColumns+" FROM nas ORDER BY shortname")
	if err != nil {
		return nil, fmt.Errorf("list routers: %w", err)
	}
	defer rows.Close()
	var out []nettportal.Router
	for rows.Next() {
		r, err := db.scanRouter(rows)
		if err != nil {
			return nil, fmt.Errorf("list routers: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list routers: %w", err)
	}
	return out, nil
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
