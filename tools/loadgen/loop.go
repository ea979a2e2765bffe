package main

import (
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Result is what one measured phase printed as JSON; field names match bench/stats.ts's Summary.
type Result struct {
	Ops         int64   `json:"ops"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"firstError,omitempty"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"opsPerSec"`
	P50Ms       num     `json:"p50Ms"`
	P99Ms       num     `json:"p99Ms"`
	MaxMs       num     `json:"maxMs"`
	MeanMs      num     `json:"meanMs"`
	CPUSeconds  float64 `json:"cpuSeconds"`
	ClientCores float64 `json:"clientCores"`
}

// num is a float64 that is written as null when it is NaN (no samples), which JSON cannot carry.
type num float64

func (n num) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(n), 'f', -1, 64), nil
}

// op is one operation of client `client`; seq is unique across the clients of a loop.
type op func(client int, seq int64) error

// runner gives the operation of a phase ("warmup" or "measure": keys of the two stay apart where it matters).
type runner func(phase string) op

// maxErrors stops a loop early: past this many failures its numbers mean nothing.
const maxErrors = 50

// stopRequested ends a closed loop early (SIGUSR1, see main): the caller's way to measure a row for exactly
// as long as something else it runs takes (bench/compaction.ts: the put row while a compaction runs).
var stopRequested atomic.Bool

// closedLoop runs `clients` workers, each one op at a time, until maxOps ops were issued, `limit` passed,
// maxErrors failed or a stop was requested, whichever comes first.
func closedLoop(clients, maxOps int, limit time.Duration, do op, record bool) *Result {
	var issued, errs, done atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, clients)
	start := time.Now()
	deadline := start.Add(limit)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1024)
			for errs.Load() < maxErrors {
				seq := issued.Add(1) - 1
				if seq >= int64(maxOps) {
					break
				}
				t0 := time.Now()
				if t0.After(deadline) || stopRequested.Load() {
					break
				}
				if err := do(c, seq); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				done.Add(1)
				if record {
					mine = append(mine, time.Since(t0))
				}
			}
			lat[c] = mine
		}(c)
	}
	wg.Wait()
	seconds := time.Since(start).Seconds()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	res := summarize(all, done.Load(), seconds, errs.Load())
	if v, ok := firstErr.Load().(string); ok {
		res.FirstError = v
	}
	return res
}

// summarize turns latency samples into the printed numbers; ops may differ from len(lat) (watch rows count
// delivered events, unrecorded warm-ups count nothing).
func summarize(lat []time.Duration, ops int64, seconds float64, errs int64) *Result {
	slices.Sort(lat)
	nan := num(math.NaN())
	r := &Result{Ops: ops, Errors: errs, Seconds: seconds, P50Ms: nan, P99Ms: nan, MaxMs: nan, MeanMs: nan}
	if seconds > 0 {
		r.OpsPerSec = float64(ops) / seconds
	}
	if len(lat) > 0 {
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		r.P50Ms = ms(percentile(lat, 0.50))
		r.P99Ms = ms(percentile(lat, 0.99))
		r.MaxMs = ms(lat[len(lat)-1])
		r.MeanMs = ms(sum / time.Duration(len(lat)))
	}
	return r
}

// percentile is the nearest-rank percentile of sorted samples, as bench/stats.ts computes it.
func percentile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(len(sorted)-1, max(0, rank))]
}

func ms(d time.Duration) num { return num(float64(d) / float64(time.Millisecond)) }

// cpuSeconds is this process's user+system CPU so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
