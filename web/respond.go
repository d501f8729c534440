package web

// How handlers answer: JSON bodies, lists, errors and the one place an
// error becomes a status.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/nettportal/nettportal"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away
}

// writeList answers {key: items}, with [] rather than null when there are
// none: scripts iterate the list without a check.
func writeList[T any](w http.ResponseWriter, key string, items []T) {
	writeJSON(w, http.StatusOK, map[string]any{key: nonNil(items)})
}

// answerList answers a list read: {key: items} as writeList does, or the
// read's error for the auth wrapper to answer.
func answerList[T any](w http.ResponseWriter, key string, items []T, err error) error {
	if err != nil {
		return err
	}
	writeList(w, key, items)
	return nil
}

// nonNil is items, or an empty list where it is nil (JSON [] not null).
func nonNil[T any](items []T) []T {
	if items == nil {
		return []T{}
	}
	return items
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// publicMessage strips the error code suffix the store adds for us.
func publicMessage(err error) string {
	msg := err.Error()
	for _, code := range []error{nettportal.ErrInvalid, nettportal.ErrNotFound, nettportal.ErrConflict,
		nettportal.ErrUnauthorized, nettportal.ErrForbidden, nettportal.ErrBusy} {
		msg = strings.TrimSuffix(msg, ": "+code.Error())
	}
	return msg
}

// statusError is an answer a handler chose itself: its status and the
// message the client reads.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// httpError is the error a handler returns to answer status with msg.
func httpError(status int, msg string) error { return &statusError{status: status, msg: msg} }

// fail answers with the status an error's code means; anything else is a
// 500 whose details go to the log, not to the client.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	var chosen *statusError
	switch {
	case errors.As(err, &chosen):
		writeError(w, chosen.status, chosen.msg)
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit))
	case errors.Is(err, nettportal.ErrInvalid):
		writeError(w, http.StatusBadRequest, publicMessage(err))
	case errors.Is(err, nettportal.ErrNotFound):
		writeError(w, http.StatusNotFound, publicMessage(err))
	case errors.Is(err, nettportal.ErrConflict):
		writeError(w, http.StatusConflict, publicMessage(err))
	case errors.Is(err, nettportal.ErrUnauthorized):
		writeError(w, http.StatusUnauthorized, "not logged in")
	case errors.Is(err, nettportal.ErrForbidden):
		writeError(w, http.StatusForbidden, publicMessage(err))
	case errors.Is(err, nettportal.ErrBusy):
		// Over the query budget: the page can be slow under abuse,
		// accounting never is; the message says what to narrow.
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, publicMessage(err))
	case statementTimeout(err):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "the query ran longer than the database allows the web page: narrow it (a router, a search, a smaller page)")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client left; nobody reads the answer.
	case dataException(err):
		// The request carried text or a number PostgreSQL cannot hold (a
		// NUL byte, invalid UTF-8, out of range): the client's fault, and
		// cheaper to catch here, once, than at every field.
		s.Log.Warn().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("request value refused by the database")
		writeError(w, http.StatusBadRequest, "a value in the request cannot be stored (NUL byte, invalid UTF-8 or out of range)")
	default:
		s.Log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("request failed")
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// statementTimeout reports a statement the server's statement_timeout
// stopped (SQLSTATE 57014).
func statementTimeout(err error) bool {
	var pg interface{ SQLState() string }
	return errors.As(err, &pg) && pg.SQLState() == "57014"
}

// dataException reports a PostgreSQL error of class 22 (data exception).
// pgconn.PgError has SQLState; matching the method keeps pgx out of web.
func dataException(err error) bool {
	var pg interface{ SQLState() string }
	return errors.As(err, &pg) && strings.HasPrefix(pg.SQLState(), "22")
}

// decodeJSON reads exactly one JSON object into v, refusing unknown fields
// so a typo in a field name is an error rather than silently ignored.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			return err
		case errors.Is(err, io.EOF):
			return fmt.Errorf("request body is empty, want a JSON object: %w", nettportal.ErrInvalid)
		case errors.As(err, &syntax):
			return fmt.Errorf("bad JSON at byte %d: %v: %w", syntax.Offset, syntax, nettportal.ErrInvalid)
		case errors.As(err, &typ):
			return fmt.Errorf("bad JSON: field %q must be %s, not %s: %w", typ.Field, typ.Type, typ.Value, nettportal.ErrInvalid)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return fmt.Errorf("bad JSON: %s: %w", strings.TrimPrefix(err.Error(), "json: "), nettportal.ErrInvalid)
		}
		return fmt.Errorf("bad JSON: %v: %w", err, nettportal.ErrInvalid)
	}
	if dec.More() {
		return fmt.Errorf("bad JSON: more than one value in the body: %w", nettportal.ErrInvalid)
	}
	return nil
}
