package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nettportal/nettportal"
)

// Throughput sums the chart samples per router into buckets over the span
// that ends at end, oldest first, for the overview's stacked charts. A session's rate
// in a bucket is its byte delta over the time its samples cover there, so a
// session reporting twice in a bucket is not counted twice.
func (db *DB) Throughput(ctx context.Context, end time.Time, span, bucket time.Duration) ([]nettportal.ThroughputPoint, error) {
	if span <= 0 || bucket < time.Second || span/bucket > 2000 {
		return nil, fmt.Errorf("throughput over %v in %v buckets: out of range", span, bucket)
	}
	rows, err := db.Pool.Query(ctx, `
		WITH s AS (
			SELECT acctuniqueid, at,
				greatest(input_octets - lag(input_octets) OVER w, 0) AS din,
				greatest(output_octets - lag(output_octets) OVER w, 0) AS dout,
				date_part('epoch', at - lag(at) OVER w) AS dt
			FROM session_samples
			WHERE at >= $3::timestamptz - make_interval(secs => $1) - make_interval(secs => $2)
			WINDOW w AS (PARTITION BY acctuniqueid ORDER BY at)
		), per AS (
			SELECT date_bin(make_interval(secs => $2), at, timestamptz 'epoch') AS bucket, acctuniqueid,
				sum(din) * 8 / sum(dt) AS inbps, sum(dout) * 8 / sum(dt) AS outbps
			FROM s WHERE dt > 0
			GROUP BY 1, 2
		)
		SELECT per.bucket, coalesce(n.shortname, host(r.nasipaddress), ''), count(*),
			coalesce(sum(per.inbps), 0)::bigint, coalesce(sum(per.outbps), 0)::bigint
		FROM per
		JOIN radacct r ON r.acctuniqueid = per.acctuniqueid
		LEFT JOIN nas n ON n.id = r.nas_id
		WHERE per.bucket >= $3::timestamptz - make_interval(secs => $1)
		GROUP BY 1, 2
		ORDER BY 1, 2`, span.Seconds(), bucket.Seconds(), end)
	if err != nil {
		return nil, fmt.Errorf("read throughput: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (nettportal.ThroughputPoint, error) {
		var p nettportal.ThroughputPoint
		err := row.Scan(&p.At, &p.Router, &p.Sessions, &p.InputBps, &p.OutputBps)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read throughput: %w", err)
	}
	return out, nil
}
