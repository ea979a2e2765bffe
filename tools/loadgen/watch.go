package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// maxInFlight bounds the watch row's unanswered puts.
const maxInFlight = 512

// drainWait is how long the last events may take to arrive before the missing ones count as errors.
const drainWait = 5 * time.Second

// runWatch measures put -> event delivery: --watchers Watch streams on one prefix (spread over the
// connections, as kube-apiserver's watch caches share a few), one writer on its own connection sending a
// put every --interval (open loop: the rate does not depend on the server), --max-ops puts. Latency = receipt at a watcher - the moment its Put was sent, for
// every (watcher, event); ops/s = events delivered per second.
func runWatch(ctx context.Context, cfg config, clients []*clientv3.Client) (*Result, error) {
	writers, err := newClients(cfg.endpoint, 1)
	if err != nil {
		return nil, err
	}
	defer closeAll(writers)
	writer := writers[0]
	value := randomValue(cfg.valueSize)

	var (
		mu        sync.Mutex
		latencies []time.Duration
		delivered atomic.Int64
		phaseName atomic.Value // string: events of other phases are ignored
		sentAt    atomic.Pointer[[]atomic.Int64] // send times (ns) of the current phase's puts
		failure   atomic.Value
	)
	phaseName.Store("")
	none := make([]atomic.Int64, 0)
	sentAt.Store(&none)
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	created := make(chan struct{}, cfg.watchers)
	for w := 0; w < cfg.watchers; w++ {
		// distinct metadata per watcher: clientv3 gives each its own gRPC stream instead of multiplexing all
		// watches of one connection on one stream
		sctx := metadata.AppendToOutgoingContext(wctx, "bench-watcher", strconv.Itoa(w))
		ch := conn(clients, w).Watch(sctx, cfg.prefix, clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
		go func() {
			for res := range ch {
				if res.Created {
					created <- struct{}{}
				}
				if err := res.Err(); err != nil {
					if wctx.Err() == nil {
						failure.CompareAndSwap(nil, err.Error())
					}
					return
				}
				now := time.Now()
				p := phaseName.Load().(string) + "/"
				for _, ev := range res.Events {
					k, ok := strings.CutPrefix(string(ev.Kv.Key), cfg.prefix)
					if ok && cfg.namespaces > 0 {
						// keyAt put "ns-<i mod N>/" before the phase
						_, k, ok = strings.Cut(k, "/")
					}
					if !ok || !strings.HasPrefix(k, p) {
						continue
					}
					sent := *sentAt.Load()
					i, err := strconv.Atoi(k[len(p):])
					if err != nil || i >= len(sent) {
						continue
					}
					delivered.Add(1)
					d := now.Sub(time.Unix(0, sent[i].Load()))
					mu.Lock()
					latencies = append(latencies, d)
					mu.Unlock()
				}
			}
		}()
	}
	timeout := time.After(30 * time.Second)
	for n := 0; n < cfg.watchers; n++ {
		select {
		case <-created:
		case <-timeout:
			return nil, fmt.Errorf("only %d of %d watches created within 30s", n, cfg.watchers)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	// phase sends `events` paced puts under prefix/name/ and waits (bounded) for every watcher to see them.
	phase := func(name string, events int, limit time.Duration) *Result {
		mu.Lock()
		latencies = nil
		mu.Unlock()
		delivered.Store(0)
		times := make([]atomic.Int64, events)
		sentAt.Store(&times)
		phaseName.Store(name)
		start := time.Now()
		deadline := start.Add(limit - drainWait)
		// open loop: a put is sent every interval whether or not the earlier ones have been answered (on
		// the writer's one connection), so every server gets the same write rate; a server that falls
		// more than maxInFlight puts behind fails the row instead of lowering the rate
		var wg sync.WaitGroup
		var sentOK, putErrs atomic.Int64
		var firstErr atomic.Value
		inFlight := make(chan struct{}, maxInFlight)
		for i := 0; i < events && time.Now().Before(deadline) && failure.Load() == nil && putErrs.Load() < maxErrors; i++ {
			if wait := time.Until(start.Add(time.Duration(i) * cfg.interval)); wait > 0 {
				time.Sleep(wait)
			}
			select {
			case inFlight <- struct{}{}:
			default:
				putErrs.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("put: more than %d puts in flight: the server does not keep up with one put every %s", maxInFlight, cfg.interval))
				continue
			}
			times[i].Store(time.Now().UnixNano())
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				defer func() { <-inFlight }()
				octx, ocancel := context.WithTimeout(context.Background(), opTimeout)
				defer ocancel()
				if _, err := writer.Put(octx, keyAt(cfg, name+"/", int64(i)), value); err != nil {
					putErrs.Add(1)
					firstErr.CompareAndSwap(nil, "put: "+err.Error())
					return
				}
				sentOK.Add(1)
			}(i)
		}
		wg.Wait()
		sent := int(sentOK.Load())
		expected := int64(sent * cfg.watchers)
		drainEnd := time.Now().Add(drainWait)
		for delivered.Load() < expected && time.Now().Before(drainEnd) && failure.Load() == nil {
			time.Sleep(2 * time.Millisecond)
		}
		got := delivered.Load()
		mu.Lock()
		lat := latencies
		latencies = nil
		mu.Unlock()
		r := summarize(lat, got, time.Since(start).Seconds(), putErrs.Load()+max(0, expected-got))
		switch {
		case failure.Load() != nil:
			r.FirstError = "watch: " + failure.Load().(string)
		case firstErr.Load() != nil:
			r.FirstError = firstErr.Load().(string)
		case got < expected:
			r.FirstError = fmt.Sprintf("%d events not delivered within %s", expected-got, drainWait)
		}
		return r
	}

	if cfg.warmup > 0 {
		if w := phase("warmup", 20, 10*time.Second+drainWait); w.Errors > 0 {
			return nil, fmt.Errorf("warm-up: %s", w.FirstError)
		}
	}
	return measure(func() *Result { return phase("measure", cfg.maxOps, cfg.duration+drainWait) })
}
