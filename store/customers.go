package store

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

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
	release, err := db.yieldToAccounting(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list customers: %w", err)
	}
	defer release()
	where, args := "", []any{}
	if q = strings.TrimSpace(q); q != "" {
		where, args = " WHERE name ILIKE $1 OR username ILIKE $1", []any{likePattern(q)}
	}
	var total int64
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM customers"+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count customers: %w", db.overBudget(err, "the search (a longer q)"))
	}
	rows, err := db.Pool.Query(ctx, fmt.Sprintf("SELECT %s FROM customers%s ORDER BY name, id LIMIT %d OFFSET %d",
		customerColumns, where, limit, offset), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list customers: %w", db.overBudget(err, "the search (a longer q)"))
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

// importChunk is how many parsed lines an import holds before it copies
// them to the database: its memory does not grow with the file.
const importChunk = 1000

// importStatementTimeout lifts the statement timeout for the import's own
// transaction: the final upsert of a large billing export may take longer
// than a page, and an import is an administrator's deliberate action.
const importStatementTimeout = 2 * time.Minute

// ImportCustomersCSV creates or updates customers from a CSV export of the
// billing system. The header names the columns: name and username are
// required, profile, phone and address optional, in any order; other
// columns are ignored. Bad lines are reported and skipped; the good ones
// are written in one transaction. A username repeated in the file takes
// its last line. The file is streamed into a temporary table a chunk at a
// time, so memory stays bounded whatever its size, and the answer holds
// the first nettportal.MaxImportErrors errors and the count of all.
func (db *DB) ImportCustomersCSV(ctx context.Context, r io.Reader) (nettportal.ImportResult, error) {
	res := nettportal.ImportResult{Errors: []nettportal.ImportLineError{}}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
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
	lineError := func(line int, msg string) {
		res.ErrorCount++
		if len(res.Errors) < nettportal.MaxImportErrors {
			res.Errors = append(res.Errors, nettportal.ImportLineError{Line: line, Error: msg})
		}
	}
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if db.stmtLimit > 0 {
			if _, err := tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)",
				strconv.FormatInt(max(importStatementTimeout, db.stmtLimit).Milliseconds(), 10)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE customer_import (line int, name text, username text,
			profile text, phone text, address text) ON COMMIT DROP`); err != nil {
			return err
		}
		chunk := make([][]any, 0, importChunk)
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"customer_import"},
				[]string{"line", "name", "username", "profile", "phone", "address"}, pgx.CopyFromRows(chunk))
			chunk = chunk[:0]
			return err
		}
		for {
			rec, err := cr.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					lineError(pe.Line, pe.Err.Error())
					continue
				}
				return fmt.Errorf("read CSV: %w", err)
			}
			// Only after a good record: FieldPos panics when Read failed.
			line, _ := cr.FieldPos(0)
			c := nettportal.Customer{Name: field(rec, "name"), Username: field(rec, "username"), Profile: field(rec, "profile"),
				Phone: field(rec, "phone"), Address: field(rec, "address")}
			if err := validCustomer(&c); err != nil {
				lineError(line, strings.TrimSuffix(err.Error(), ": "+nettportal.ErrInvalid.Error()))
				continue
			}
			chunk = append(chunk, []any{line, c.Name, c.Username, c.Profile, c.Phone, c.Address})
			if len(chunk) == importChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		// A username repeated: every line but its last is reported; the
		// first errors by line are kept, wherever they came from.
		var dups int
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(n - 1), 0) FROM
			(SELECT count(*) AS n FROM customer_import GROUP BY username HAVING count(*) > 1) d`).Scan(&dups); err != nil {
			return err
		}
		if dups > 0 {
			rows, err := tx.Query(ctx, `SELECT line, username, winner FROM (
				SELECT line, username, max(line) OVER (PARTITION BY username) AS winner FROM customer_import) d
				WHERE line <> winner ORDER BY line LIMIT $1`, nettportal.MaxImportErrors)
			if err != nil {
				return err
			}
			var dupErrs []nettportal.ImportLineError
			for rows.Next() {
				var line, winner int
				var user string
				if err := rows.Scan(&line, &user, &winner); err != nil {
					rows.Close()
					return err
				}
				dupErrs = append(dupErrs, nettportal.ImportLineError{Line: line,
					Error: fmt.Sprintf("username %q appears again on line %d, which wins", user, winner)})
			}
			if err := rows.Err(); err != nil {
				return err
			}
			res.ErrorCount += dups
			res.Errors = append(res.Errors, dupErrs...)
			sort.SliceStable(res.Errors, func(i, j int) bool { return res.Errors[i].Line < res.Errors[j].Line })
			res.Errors = res.Errors[:min(len(res.Errors), nettportal.MaxImportErrors)]
		}
		return tx.QueryRow(ctx, `WITH up AS (
			INSERT INTO customers (name, username, profile, phone, address)
			SELECT DISTINCT ON (username) name, username, profile, phone, address FROM customer_import
			ORDER BY username, line DESC
			ON CONFLICT (username) DO UPDATE SET name = EXCLUDED.name, profile = EXCLUDED.profile,
				phone = EXCLUDED.phone, address = EXCLUDED.address, updated_at = now()
			RETURNING xmax = 0 AS created)
			SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created) FROM up`).Scan(&res.Created, &res.Updated)
	})
	if err != nil {
		if errors.Is(err, nettportal.ErrInvalid) {
			return res, err
		}
		return nettportal.ImportResult{Errors: []nettportal.ImportLineError{}}, fmt.Errorf("import customers: %w", db.overBudget(err, "the file (import it in parts)"))
	}
	return res, nil
}
