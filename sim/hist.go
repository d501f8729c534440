package sim

import (
	"math/bits"
	"time"
)

// histogram records latencies in microseconds with about 3% precision in
// a fixed array, so recording never allocates: values under 64µs exactly,
// above that 32 sub-buckets per power of two.
type histogram struct {
	counts [64 + 40*32]uint64
	n      uint64
	max    time.Duration
}

func histIndex(us uint64) int {
	if us < 64 {
		return int(us)
	}
	e := bits.Len64(us) - 6 // us>>e is in [32, 64)
	return min(64+(e-1)*32+int(us>>e)-32, 64+40*32-1)
}

// histUpper is the largest value bucket i holds.
func histUpper(i int) time.Duration {
	if i < 64 {
		return time.Duration(i) * time.Microsecond
	}
	e := (i-64)/32 + 1
	m := uint64((i-64)%32 + 32)
	return time.Duration(((m+1)<<e)-1) * time.Microsecond
}

func (h *histogram) record(d time.Duration) {
	h.counts[histIndex(uint64(max(d, 0)/time.Microsecond))]++
	h.n++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

func (h *histogram) latency() Latency {
	return Latency{P50: h.quantile(0.5), P90: h.quantile(0.9), P99: h.quantile(0.99), Max: h.max}
}

// quantile returns an upper bound of the q-quantile (0 < q <= 1).
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(histUpper(i), h.max)
		}
	}
	return h.max
}
