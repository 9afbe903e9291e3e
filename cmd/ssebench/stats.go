package main

import (
	"math"
	"sync/atomic"
	"time"
)

// hist is a log-linear latency histogram: buckets 2% wide from 1µs to
// about 17 minutes. It merges by adding counts, so workers can send theirs
// to the parent.
type hist struct {
	Counts []int64 `json:"counts"`
	Max    int64   `json:"max"` // nanoseconds
	N      int64   `json:"n"`
}

const (
	histBase    = 1.02
	histBuckets = 1100
)

func newHist() *hist { return &hist{Counts: make([]int64, histBuckets)} }

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	return min(int(math.Log(us)/math.Log(histBase))+1, histBuckets-1)
}

// add records d; safe for concurrent use with other adds.
func (h *hist) add(d time.Duration) {
	d = max(d, 0)
	atomic.AddInt64(&h.Counts[bucketOf(d)], 1)
	atomic.AddInt64(&h.N, 1)
	for {
		m := atomic.LoadInt64(&h.Max)
		if int64(d) <= m || atomic.CompareAndSwapInt64(&h.Max, m, int64(d)) {
			return
		}
	}
}

func (h *hist) merge(o *hist) {
	if o == nil {
		return
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.N += o.N
	h.Max = max(h.Max, o.Max)
}

// quantile is the upper bound of the bucket holding quantile q.
func (h *hist) quantile(q float64) time.Duration {
	if h.N == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.N)))
	var seen int64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			if i == 0 {
				return time.Microsecond
			}
			return min(time.Duration(math.Pow(histBase, float64(i))*float64(time.Microsecond)), time.Duration(h.Max))
		}
	}
	return time.Duration(h.Max)
}
