package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nettportal/nettportal"
)

// ThroughputSource sums chart samples per router over time; the session
// source implements it when it can (the store does).
type ThroughputSource interface {
	Throughput(ctx context.Context, end time.Time, span, bucket time.Duration) ([]nettportal.ThroughputPoint, error)
}

// maxThroughputHours bounds the overview's history: samples are kept for
// days, but a wider span only costs the database more.
const maxThroughputHours = 48

// throughput answers GET /api/throughput?hours=N (1..48, default 6): per
// router and bucket (about 90 buckets over the span), the sessions that
// reported and their summed rates.
func (s *Server) throughput(w http.ResponseWriter, r *http.Request, _ nettportal.User) error {
	src, ok := s.Sessions.(ThroughputSource)
	if !ok {
		return httpError(http.StatusServiceUnavailable, "throughput history not available")
	}
	hours := 6
	if v := r.URL.Query().Get("hours"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxThroughputHours {
			return fmt.Errorf("hours must be a whole number from 1 to %d, not %q: %w", maxThroughputHours, v, nettportal.ErrInvalid)
		}
		hours = n
	}
	span := time.Duration(hours) * time.Hour
	bucket := max(span/90, time.Minute).Truncate(time.Minute)
	pts, err := src.Throughput(r.Context(), time.Now(), span, bucket)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"hours": hours, "bucket_seconds": int(bucket.Seconds()), "points": pts})
	return nil
}
