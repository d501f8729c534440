package store

import (
	"context"
	"fmt"
)

// RouterOpenCount is the number of open sessions of one router.
type RouterOpenCount struct {
	Router string // nas.shortname; "unknown" for rows of no (or a deleted) router
	Open   int64
}

// OpenSessionCounts counts open sessions per router, with a zero for every
// router that has none. The grouped count reads only the partial index on
// open rows, so its cost does not grow with the history.
func (db *DB) OpenSessionCounts(ctx context.Context) ([]RouterOpenCount, error) {
	rows, err := db.Pool.Query(ctx, `SELECT coalesce(n.shortname, 'unknown'), sum(coalesce(c.open, 0))::bigint
		FROM (SELECT nas_id, count(*) AS open FROM radacct WHERE acctstoptime IS NULL AND nas_id IS NOT NULL GROUP BY nas_id
			UNION ALL
			-- Rows without nas_id count for the router their address
			-- resolves to (ownership.go), one call per address.
			SELECT nas_router_id(nasipaddress), count(*) FROM radacct WHERE acctstoptime IS NULL AND nas_id IS NULL
			GROUP BY nasipaddress) c
		FULL JOIN nas n ON n.id = c.nas_id
		GROUP BY 1 ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("count open sessions per router: %w", err)
	}
	defer rows.Close()
	var out []RouterOpenCount
	for rows.Next() {
		var c RouterOpenCount
		if err := rows.Scan(&c.Router, &c.Open); err != nil {
			return nil, fmt.Errorf("count open sessions per router: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count open sessions per router: %w", err)
	}
	return out, nil
}
