package store

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/nettportal/nettportal"
)

const customerColumns = "id, name, username, profile, phone, address, created_at, updated_at"

func scanCustomer(row pgx.Row) (nettportal.Customer, error) {
	var c nettportal.Customer
	err := row.Scan(&c.ID, &c.Name, &c.Username, &c.Profile, &c.Phone, &c.Address, &c.CreatedAt, &c.UpdatedAt)
	return c, err
}

// Customers lists customers whose name or username contains q (all when q
// is empty), by name, and how many match in all.
func (db *DB) Customers(ctx context.Context, q string, limit, offset int) ([]nettportal.Customer, int64, error) {
	if limit <= 0 {
		limit = DefaultSessionLimit
	}
	if limit > MaxSessionLimit || offset < 0 {
		return nil, 0, fmt.Errorf("limit must be 1-%d and offset not negative: %w", MaxSessionLimit, nettportal.ErrInvalid)
	}
	where, args := "", []any{}
	if q = strings.TrimSpace(q); q != "" {
		where, args = " WHERE name ILIKE $1 OR username ILIKE $1", []any{likePattern(q)}
	}
	var total int64
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM customers"+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count customers: %w", err)
	}
	rows, err := db.Pool.Query(ctx, fmt.Sprintf("SELECT %s FROM customers%s ORDER BY name, id LIMIT %d OFFSET %d",
		customerColumns, where, limit, offset), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list customers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (nettportal.Customer, error) { return scanCustomer(row) })
	if err != nil {
		return nil, 0, fmt.Errorf("list customers: %w", err)
	}
	return out, total, nil
}

// Customer returns one customer by id.
func (db *DB) Customer(ctx context.Context, id int64) (nettportal.Customer, error) {
	c, err := scanCustomer(db.Pool.QueryRow(ctx, "SELECT "+customerColumns+" FROM customers WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("customer %d: %w", id, nettportal.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("read customer %d: %w", id, err)
	}
	return c, nil
}

func validCustomer(c *nettportal.Customer) error {
	c.Name, c.Username = strings.TrimSpace(c.Name), strings.TrimSpace(c.Username)
	switch {
	case c.Name == "":
		return fmt.Errorf("customer name is required: %w", nettportal.ErrInvalid)
	case c.Username == "":
		return fmt.Errorf("customer %q needs the PPPoE username: %w", c.Name, nettportal.ErrInvalid)
	}
	return nil
}

// SaveCustomer links a customer to a PPPoE username: it creates the
// customer, or updates the one with that username (the billing system's
// key), and fills in c.ID. created tells which.
func (db *DB) SaveCustomer(ctx context.Context, c *nettportal.Customer) (created bool, err error) {
	if err := validCustomer(c); err != nil {
		return false, err
	}
	err = db.Pool.QueryRow(ctx, `INSERT INTO customers (name, username, profile, phone, address)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (username) DO UPDATE SET name = EXCLUDED.name, profile = EXCLUDED.profile,
			phone = EXCLUDED.phone, address = EXCLUDED.address, updated_at = now()
		RETURNING id, created_at, updated_at, xmax = 0`,
		c.Name, c.Username, c.Profile, c.Phone, c.Address).Scan(&c.ID, &c.CreatedAt, &c.UpdatedAt, &created)
	if err != nil {
		return false, fmt.Errorf("save customer %q: %w", c.Username, err)
	}
	return created, nil
}

// UpdateCustomer changes the customer with c.ID, username included.
func (db *DB) UpdateCustomer(ctx context.Context, c *nettportal.Customer) error {
	if err := validCustomer(c); err != nil {
		return err
	}
	err := db.Pool.QueryRow(ctx, `UPDATE customers SET name = $2, username = $3, profile = $4, phone = $5, address = $6,
		updated_at = now() WHERE id = $1 RETURNING created_at, updated_at`,
		c.ID, c.Name, c.Username, c.Profile, c.Phone, c.Address).Scan(&c.CreatedAt, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("customer %d: %w", c.ID, nettportal.ErrNotFound)
	}
	if uniqueViolation(err) {
		return fmt.Errorf("username %q belongs to another customer: %w", c.Username, nettportal.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("update customer %d: %w", c.ID, err)
	}
	return nil
}

// DeleteCustomer removes a customer; its sessions stay, unnamed.
func (db *DB) DeleteCustomer(ctx context.Context, id int64) error {
	tag, err := db.Pool.Exec(ctx, "DELETE FROM customers WHERE id = $1", id)
	if err != nil {
		return fmt.Errorf("delete customer %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("customer %d: %w", id, nettportal.ErrNotFound)
	}
	return nil
}

// ImportCustomersCSV creates or updates customers from a CSV export of the
// billing system. The header names the columns: name and username are
// required, profile, phone and address optional, in any order; other
// columns are ignored. Bad lines are reported and skipped; the good ones
// are written in one transaction. A username repeated in the file takes
// its last line.
func (db *DB) ImportCustomersCSV(ctx context.Context, r io.Reader) (nettportal.ImportResult, error) {
	res := nettportal.ImportResult{Errors: []nettportal.ImportLineError{}}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return res, fmt.Errorf("read CSV header (want name,username,profile,phone,address): %w", nettportal.ErrInvalid)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	if _, ok := col["name"]; !ok {
		return res, fmt.Errorf("CSV header has no \"name\" column: %w", nettportal.ErrInvalid)
	}
	if _, ok := col["username"]; !ok {
		return res, fmt.Errorf("CSV header has no \"username\" column: %w", nettportal.ErrInvalid)
	}
	field := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	byUser := map[string]int{}
	var rows []nettportal.Customer
	var lines []int
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				res.Errors = append(res.Errors, nettportal.ImportLineError{Line: pe.Line, Error: pe.Err.Error()})
				continue
			}
			return res, fmt.Errorf("read CSV: %w", err)
		}
		// Only after a good record: FieldPos panics when Read failed.
		line, _ := cr.FieldPos(0)
		c := nettportal.Customer{Name: field(rec, "name"), Username: field(rec, "username"), Profile: field(rec, "profile"),
			Phone: field(rec, "phone"), Address: field(rec, "address")}
		if err := validCustomer(&c); err != nil {
			res.Errors = append(res.Errors, nettportal.ImportLineError{Line: line, Error: strings.TrimSuffix(err.Error(), ": "+nettportal.ErrInvalid.Error())})
			continue
		}
		if i, dup := byUser[c.Username]; dup {
			res.Errors = append(res.Errors, nettportal.ImportLineError{Line: lines[i],
				Error: fmt.Sprintf("username %q appears again on line %d, which wins", c.Username, line)})
			rows[i], lines[i] = c, line
			continue
		}
		byUser[c.Username] = len(rows)
		rows = append(rows, c)
		lines = append(lines, line)
	}
	if len(rows) == 0 {
		return res, nil
	}
	names, users, profiles, phones, addrs := make([]string, len(rows)), make([]string, len(rows)),
		make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows))
	for i, c := range rows {
		names[i], users[i], profiles[i], phones[i], addrs[i] = c.Name, c.Username, c.Profile, c.Phone, c.Address
	}
	dbRows, err := db.Pool.Query(ctx, `INSERT INTO customers (name, username, profile, phone, address)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
		ON CONFLICT (username) DO UPDATE SET name = EXCLUDED.name, profile = EXCLUDED.profile,
			phone = EXCLUDED.phone, address = EXCLUDED.address, updated_at = now()
		RETURNING xmax = 0`, names, users, profiles, phones, addrs)
	if err != nil {
		return res, fmt.Errorf("import customers: %w", err)
	}
	created, err := pgx.CollectRows(dbRows, pgx.RowTo[bool])
	if err != nil {
		return res, fmt.Errorf("import customers: %w", err)
	}
	for _, c := range created {
		if c {
			res.Created++
		} else {
			res.Updated++
		}
	}
	return res, nil
}
