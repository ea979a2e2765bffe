package main

// The clients: each one operation at a time over its own connection, on a few shared keys so that
// transactions contend, for a bounded time and count. Every call is recorded with its times and result.

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type traffic struct {
	prefix    string
	keys      []string
	duration  time.Duration
	maxOps    int
	opTimeout time.Duration
	seed      int64
	began     time.Time
}

func (t *traffic) now() int64 { return time.Since(t.began).Nanoseconds() }

// run drives one client per connection until the duration or the op bound; returns every op, in no order.
func (t *traffic) run(ctx context.Context, clients []*clientv3.Client) []*Op {
	var mu sync.Mutex
	var all []*Op
	var wg sync.WaitGroup
	deadline := time.Now().Add(t.duration)
	for i, cli := range clients {
		wg.Add(1)
		go func(id int, cli *clientv3.Client) {
			defer wg.Done()
			ops := t.client(ctx, id, cli, deadline)
			mu.Lock()
			all = append(all, ops...)
			mu.Unlock()
		}(i, cli)
	}
	wg.Wait()
	return all
}

func (t *traffic) client(ctx context.Context, id int, cli *clientv3.Client, deadline time.Time) []*Op {
	rng := rand.New(rand.NewSource(t.seed + int64(id)))
	// the mod revision this client last saw of each key: what its optimistic writes compare against
	lastMod := map[string]int64{}
	// the revision of this client's last list: a later one may continue there, as a paged list does
	var lastList int64
	var ops []*Op
	for n := 0; n < t.maxOps && time.Now().Before(deadline) && ctx.Err() == nil; n++ {
		key := t.keys[rng.Intn(len(t.keys))]
		o := &Op{Client: id, Key: key, Value: fmt.Sprintf("c%d-%d", id, n)}
		switch p := rng.Intn(100); {
		case p < 22:
			o.Kind, o.Value = opGet, ""
		case p < 30:
			o.Kind, o.Key, o.Value, o.Limit = opList, t.prefix, "", int64(rng.Intn(6))
			if lastList > 0 && rng.Intn(3) == 0 {
				o.AtRev = lastList
			}
		case p < 45:
			o.Kind = opPut
		case p < 70:
			o.Kind, o.Expect = opCasPut, lastMod[key]
		case p < 80:
			o.Kind, o.Expect = opCasDelete, lastMod[key]
			if o.Expect == 0 {
				o.Kind = opCreate
			}
		case p < 90:
			o.Kind = opCreate
		default:
			o.Kind = opPut2
			for o.Key2 = key; o.Key2 == key; {
				o.Key2 = t.keys[rng.Intn(len(t.keys))]
			}
			o.Value2 = o.Value + "b"
		}
		if o.Kind == opCasDelete {
			o.Value = ""
		}
		t.do(ctx, cli, o)
		ops = append(ops, o)
		if o.Err != "" {
			// the server may be restarting: do not spin
			time.Sleep(20 * time.Millisecond)
			continue
		}
		switch {
		case o.Kind == opList:
			if o.AtRev == 0 {
				lastList = o.Rev
			}
		case o.Kind == opGet || (o.IsWrite() && !o.Succeeded):
			lastMod[key] = 0
			if o.Found {
				lastMod[key] = o.ModRev
			}
		case o.Kind == opCasDelete:
			lastMod[key] = 0
		default:
			lastMod[key] = o.Rev
			if o.Kind == opPut2 {
				lastMod[o.Key2] = o.Rev
			}
		}
	}
	return ops
}

func (t *traffic) do(ctx context.Context, cli *clientv3.Client, o *Op) {
	cctx, cancel := context.WithTimeout(ctx, t.opTimeout)
	defer cancel()
	o.Call = t.now()
	var err error
	switch o.Kind {
	case opGet:
		var resp *clientv3.GetResponse
		if resp, err = cli.Get(cctx, o.Key); err == nil {
			o.Rev = resp.Header.Revision
			if len(resp.Kvs) > 0 {
				o.Found, o.Got, o.ModRev = true, string(resp.Kvs[0].Value), resp.Kvs[0].ModRevision
			}
		}
	case opList:
		opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithLimit(o.Limit), clientv3.WithRev(o.AtRev)}
		var resp *clientv3.GetResponse
		if resp, err = cli.Get(cctx, o.Key, opts...); err == nil {
			o.Rev, o.Count, o.More = resp.Header.Revision, resp.Count, resp.More
			for _, kv := range resp.Kvs {
				o.Items = append(o.Items, kvOf(kv))
			}
		}
	case opPut:
		var resp *clientv3.PutResponse
		if resp, err = cli.Put(cctx, o.Key, o.Value); err == nil {
			o.Rev, o.Succeeded = resp.Header.Revision, true
		}
	case opPut2:
		var resp *clientv3.TxnResponse
		if resp, err = cli.Txn(cctx).Then(clientv3.OpPut(o.Key, o.Value), clientv3.OpPut(o.Key2, o.Value2)).Commit(); err == nil {
			o.Rev, o.Succeeded = resp.Header.Revision, resp.Succeeded
		}
	default:
		var then clientv3.Op
		cmp := clientv3.Compare(clientv3.ModRevision(o.Key), "=", o.Expect)
		switch o.Kind {
		case opCasDelete:
			then = clientv3.OpDelete(o.Key)
		default:
			then = clientv3.OpPut(o.Key, o.Value)
		}
		var resp *clientv3.TxnResponse
		if resp, err = cli.Txn(cctx).If(cmp).Then(then).Else(clientv3.OpGet(o.Key)).Commit(); err == nil {
			o.Rev, o.Succeeded = resp.Header.Revision, resp.Succeeded
			if !resp.Succeeded {
				if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
					o.Found, o.Got, o.ModRev = true, string(kvs[0].Value), kvs[0].ModRevision
				}
			}
		}
	}
	o.Return = t.now()
	if err != nil {
		o.Err = err.Error()
	}
}
