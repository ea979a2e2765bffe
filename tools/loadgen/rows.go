package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// opTimeout bounds every operation: a wedged server fails the row instead of hanging the bench.
const opTimeout = 15 * time.Second

// keyOf is zero-padded so keys sort in numeric order (lists check pages by key), as bench/data.ts does.
func keyOf(prefix string, i int64) string { return fmt.Sprintf("%s%08d", prefix, i) }

// keyAt is the i-th key of the run under sub ("" or "<phase>/"): keyOf(prefix+sub, i), or with --namespaces N
// prefix + "ns-<i mod N>/" + sub + %08d, so that with a prefix /registry/<resource>/ the keys of one row are
// spread evenly over N namespaces, which a topology's namespace rules can route to different backends.
func keyAt(cfg config, sub string, i int64) string {
	if cfg.namespaces > 0 {
		return fmt.Sprintf("%sns-%d/%s%08d", cfg.prefix, i%int64(cfg.namespaces), sub, i)
	}
	return keyOf(cfg.prefix+sub, i)
}

// prefixEnd is the range end covering every key that starts with p.
func prefixEnd(p string) string { return clientv3.GetPrefixRangeEnd(p) }

func randomValue(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return string(b)
}

// client c's connection: logical clients are spread round-robin over the connections.
func conn(clients []*clientv3.Client, c int) *clientv3.Client { return clients[c%len(clients)] }

func putRunner(cfg config, clients []*clientv3.Client) runner {
	value := randomValue(cfg.valueSize)
	return func(phase string) op {
		sub := phase + "/"
		return func(c int, seq int64) error {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			_, err := conn(clients, c).Put(ctx, keyAt(cfg, sub, seq), value)
			return err
		}
	}
}

func getRunner(ctx context.Context, cfg config, clients []*clientv3.Client) (runner, error) {
	if err := load(ctx, clients, cfg, int64(cfg.keys), randomValue(cfg.valueSize), 4, nil); err != nil {
		return nil, err
	}
	var opts []clientv3.OpOption
	if cfg.serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	return func(string) op {
		return func(c int, seq int64) error {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			// a cheap spread over the keys without a shared random source
			k := keyAt(cfg, "", (seq*7919)%int64(cfg.keys))
			res, err := conn(clients, c).Get(ctx, k, opts...)
			if err != nil {
				return err
			}
			if len(res.Kvs) != 1 {
				return fmt.Errorf("get %s: %d kvs, want 1", k, len(res.Kvs))
			}
			return nil
		}
	}, nil
}

// txnRunner is kube-apiserver's update: If(mod(k)==rev) Then(Put k) Else(Range k), each client updating
// its own key and carrying the revision the previous update returned, so every compare passes.
func txnRunner(ctx context.Context, cfg config, clients []*clientv3.Client) (runner, error) {
	value := randomValue(cfg.valueSize)
	if err := load(ctx, clients, cfg, int64(cfg.clients), value, 4, nil); err != nil {
		return nil, err
	}
	revs := make([]int64, cfg.clients)
	for c := range revs {
		res, err := conn(clients, c).Get(ctx, keyAt(cfg, "", int64(c)))
		if err != nil {
			return nil, err
		}
		if len(res.Kvs) != 1 {
			return nil, fmt.Errorf("txn setup: key %d missing", c)
		}
		revs[c] = res.Kvs[0].ModRevision
	}
	return func(string) op {
		return func(c int, _ int64) error {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			k := keyAt(cfg, "", int64(c))
			res, err := conn(clients, c).Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(k), "=", revs[c])).
				Then(clientv3.OpPut(k, value)).
				Else(clientv3.OpGet(k)).
				Commit()
			if err != nil {
				return err
			}
			if !res.Succeeded {
				return fmt.Errorf("txn: compare failed on %s (rev %d)", k, revs[c])
			}
			revs[c] = res.Header.Revision
			return nil
		}
	}, nil
}

// listRunner is kube-apiserver's paged LIST: the first page at the current revision, then pages continuing
// strictly after the last key returned, pinned to the first page's revision. One op = the whole list.
func listRunner(ctx context.Context, cfg config, clients []*clientv3.Client) (runner, error) {
	if err := load(ctx, clients, cfg, int64(cfg.keys), randomValue(cfg.valueSize), 4, nil); err != nil {
		return nil, err
	}
	end := prefixEnd(cfg.prefix)
	maxPages := cfg.keys/cfg.pageSize + 2
	return func(string) op {
		return func(c int, _ int64) error {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			cl := conn(clients, c)
			key := cfg.prefix
			var rev int64
			seen := 0
			for page := 0; page < maxPages; page++ {
				opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(cfg.pageSize))}
				if rev != 0 {
					opts = append(opts, clientv3.WithRev(rev))
				}
				res, err := cl.Get(ctx, key, opts...)
				if err != nil {
					return err
				}
				if rev == 0 {
					rev = res.Header.Revision
				}
				seen += len(res.Kvs)
				if !res.More || len(res.Kvs) == 0 {
					break
				}
				key = string(res.Kvs[len(res.Kvs)-1].Key) + "\x00"
			}
			if seen != cfg.keys {
				return fmt.Errorf("list: %d keys, want %d", seen, cfg.keys)
			}
			return nil
		}
	}, nil
}

// perTxn is etcd's default --max-txn-ops: puts per multi-put Txn when loading.
const perTxn = 128

// load stores keys keyAt(cfg, "", 0..count-1) with value: multi-put Txns of perTxn keys, `workers` in
// flight. A server that refuses multi-put Txns (kine accepts only kube's Txn shapes) gets kube's create
// Txn per key, 16 workers per Txn worker, instead (not Put: kine v0.17.5 on PostgreSQL acknowledged
// concurrent Puts of new keys it never stored, about 30 in 5000, where its create Txn did not). progress, if set, is called with the keys stored so far.
func load(ctx context.Context, clients []*clientv3.Client, cfg config, count int64, value string, workers int, progress func(int64)) error {
	var next, stored atomic.Int64
	single := false
	// probe with the first Txn: either mode is decided before the workers start
	if count > 0 {
		n := min(count, perTxn)
		if err := multiPut(ctx, clients[0], cfg, 0, n, value); err != nil {
			single = true
		} else {
			next.Store(n)
			stored.Store(n)
		}
	}
	if single {
		workers *= 16
	}
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cl := conn(clients, w)
			for ctx.Err() == nil && firstErr.Load() == nil {
				step := int64(perTxn)
				if single {
					step = 1
				}
				from := next.Add(step) - step
				if from >= count {
					return
				}
				to := min(count, from+step)
				var err error
				if single {
					err = create(ctx, cl, keyAt(cfg, "", from), value)
				} else {
					err = multiPut(ctx, cl, cfg, from, to, value)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				s := stored.Add(to - from)
				if progress != nil {
					progress(s)
				}
			}
		}(w)
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return fmt.Errorf("loading %d keys under %s: %w", count, cfg.prefix, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("loading %d keys under %s: %d stored before the setup bound: %w", count, cfg.prefix, stored.Load(), err)
	}
	return nil
}

// create is kube-apiserver's create: If(mod(k)==0) Then(Put k) Else(Range k); a key that exists fails.
func create(ctx context.Context, cl *clientv3.Client, key, value string) error {
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	res, err := cl.Txn(octx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, value)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return err
	}
	if !res.Succeeded {
		return fmt.Errorf("create %s: the key exists", key)
	}
	return nil
}

func multiPut(ctx context.Context, cl *clientv3.Client, cfg config, from, to int64, value string) error {
	ops := make([]clientv3.Op, 0, to-from)
	for i := from; i < to; i++ {
		ops = append(ops, clientv3.OpPut(keyAt(cfg, "", i), value))
	}
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	res, err := cl.Txn(octx).Then(ops...).Commit()
	if err != nil {
		return err
	}
	if !res.Succeeded {
		return fmt.Errorf("multi-put Txn did not succeed")
	}
	return nil
}

// runLoad is the "load" row: --keys keys of --value-size bytes, --clients Txns (or 16x Puts) in flight.
func runLoad(ctx context.Context, cfg config, clients []*clientv3.Client) (*Result, error) {
	value := randomValue(cfg.valueSize)
	var last atomic.Int64
	var failed error
	res, err := measure(func() *Result {
		start := time.Now()
		failed = load(ctx, clients, cfg, int64(cfg.keys), value, cfg.clients, func(s int64) {
			// a progress line per 10% on stderr, for long memory phases
			if step := int64(cfg.keys / 10); step > 0 && s/step > last.Load() {
				last.Store(s / step)
				fmt.Fprintf(os.Stderr, "loadgen: %d keys stored (%.0f keys/s)\n", s, float64(s)/time.Since(start).Seconds())
			}
		})
		secs := time.Since(start).Seconds()
		r := summarize(nil, int64(cfg.keys), secs, 0)
		if failed != nil {
			r.Errors = 1
			r.FirstError = failed.Error()
		}
		return r
	})
	if err != nil {
		return nil, err
	}
	return res, failed
}
