package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nettportal/nettportal"
)

// UsageSource reads billing usage.
type UsageSource interface {
	Usage(ctx context.Context, f nettportal.UsageFilter) ([]nettportal.UsageRow, error)
}

// usageFilter reads from, to (YYYY-MM-DD, inclusive), username and period.
// Without dates it is the current month so far.
func usageFilter(q url.Values, now time.Time) (nettportal.UsageFilter, error) {
	f := nettportal.UsageFilter{Username: q.Get("username"), Period: q.Get("period")}
	if f.Period != "" && f.Period != nettportal.PeriodDay && f.Period != nettportal.PeriodMonth {
		return f, fmt.Errorf("period must be day or month, not %q: %w", f.Period, nettportal.ErrInvalid)
	}
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	f.From = today.AddDate(0, 0, 1-today.Day())
	f.To = today
	for name, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if v := q.Get(name); v != "" {
			d, err := time.Parse(time.DateOnly, v)
			if err != nil {
				return f, fmt.Errorf("%s must be a date like 2026-11-01, not %q: %w", name, v, nettportal.ErrInvalid)
			}
			*dst = d
		}
	}
	if f.To.Before(f.From) {
		return f, fmt.Errorf("to (%s) is before from (%s): %w", f.To.Format(time.DateOnly), f.From.Format(time.DateOnly), nettportal.ErrInvalid)
	}
	if f.To.Sub(f.From) > 366*24*time.Hour {
		return f, fmt.Errorf("at most a year of usage at a time: %w", nettportal.ErrInvalid)
	}
	return f, nil
}

// usage runs the request's usage query.
func (s *Server) usage(r *http.Request) (nettportal.UsageFilter, []nettportal.UsageRow, error) {
	if s.Usage == nil {
		return nettportal.UsageFilter{}, nil, httpError(http.StatusServiceUnavailable, "usage not configured")
	}
	f, err := usageFilter(r.URL.Query(), time.Now())
	if err != nil {
		return f, nil, err
	}
	rows, err := s.Usage.Usage(r.Context(), f)
	return f, rows, err
}

func (s *Server) listUsage(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	f, rows, err := s.usage(r)
	if err != nil {
		return err
	}
	type row struct {
		Username     string `json:"username"`
		Day          string `json:"day"`
		InputOctets  int64  `json:"input_octets"`
		OutputOctets int64  `json:"output_octets"`
		Sessions     int64  `json:"sessions,omitempty"`
	}
	out := make([]row, 0, len(rows))
	for _, u := range rows {
		out = append(out, row{u.Username, u.Day.Format(time.DateOnly), u.InputOctets, u.OutputOctets, u.Sessions})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"from": f.From.Format(time.DateOnly), "to": f.To.Format(time.DateOnly), "period": periodName(f.Period), "usage": out,
	})
	return nil
}

func (s *Server) exportUsage(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	f, rows, err := s.usage(r)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="usage-%s-%s.csv"`,
		f.From.Format("20060102"), f.To.Format("20060102")))
	cw := newCSVWriter(w)
	cw.Write([]string{"username", periodName(f.Period), "download_octets", "upload_octets"}) //nolint:errcheck // checked by Flush
	for _, u := range rows {
		cw.Write([]string{u.Username, u.Day.Format(time.DateOnly), //nolint:errcheck // checked by Flush
			strconv.FormatInt(u.OutputOctets, 10), strconv.FormatInt(u.InputOctets, 10)})
	}
	cw.Flush()
	return nil
}

func periodName(p string) string {
	if p == nettportal.PeriodMonth {
		return "month"
	}
	return "day"
}
