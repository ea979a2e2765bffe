// robustness: random Kubernetes-shaped traffic against one etcd API endpoint, recorded, then checked the way
// etcd's robustness tests check etcd: linearizability of every operation (porcupine, with a per-key model of
// etcd), every list equal to the snapshot the watch replays at its revision, one global revision in real-time
// order, and the watch guarantees (ordered, unique, atomic, bookmarkable, reliable, resumable). Faults (kill -9 and restart of the server) are the caller's: a call
// that fails meanwhile has an unknown outcome, settled from the watch.
//
//	robustness --endpoint 127.0.0.1:2379 --prefix /hk-robust/1/ --duration 5s --clients 8
//	robustness --self-test
//
// Prints one JSON report on stdout ("ok" is the verdict); exit 0 when the run ran (whatever the verdict),
// 1 when it could not (no server, a watch that never caught up is reported as a violation).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// keySuffixes: a key's last character decides its backend under the test suite's routed topology
// ([g-m] etcd, [u-z] child middleware, even digits and a-f PostgreSQL, odd digits and n-t MariaDB, the rest
// SQLite), so the first ten keys cover every backend twice.
const keySuffixes = "agu1Zbhv3Ycix5Xdjw7W"

type report struct {
	OK           bool           `json:"ok"`
	Linearizable string         `json:"linearizable"`
	Violations   []string       `json:"violations"`
	Ops          map[string]int `json:"ops"`
	Writes       int            `json:"writes"`
	Lists        int            `json:"lists"`
	CasFailed    int            `json:"casFailed"`
	Patch        patchStats     `json:"patch"`
	Events       int            `json:"events"`
	Responses    int            `json:"responses"`
	Progress     int            `json:"progressNotifications"`
	StartRev     int64          `json:"startRev"`
	FinalRev     int64          `json:"finalRev"`
	Resumed      map[string]int `json:"resumed"`
	Seconds      float64        `json:"seconds"`
	Errors       map[string]int `json:"errors,omitempty"`
}

func main() {
	fs := flag.NewFlagSet("robustness", flag.ExitOnError)
	endpoint := fs.String("endpoint", "", "server address HOST:PORT (loopback only)")
	prefix := fs.String("prefix", "/hk-robust/", "key prefix of this run (distinct per run)")
	duration := fs.Duration("duration", 5*time.Second, "traffic duration")
	clients := fs.Int("clients", 8, "concurrent clients, one connection each")
	keys := fs.Int("keys", 10, "keys the clients share (at most 20)")
	maxOps := fs.Int("max-ops", 5000, "bound on operations per client")
	opTimeout := fs.Duration("op-timeout", 2*time.Second, "bound on one call")
	seed := fs.Int64("seed", time.Now().UnixNano(), "random seed (printed in the report's ops when it fails)")
	checkTimeout := fs.Duration("check-timeout", 2*time.Minute, "bound on the linearizability check")
	viz := fs.String("viz", "", "write porcupine's HTML visualisation here when the history is not linearizable")
	historyOut := fs.String("history", "", "write the recorded history (JSON) here")
	selfTest := fs.Bool("self-test", false, "run the checks on built-in histories of broken servers; print which were caught")
	recheck := fs.String("check", "", "check a history written by --history instead of running traffic")
	_ = fs.Parse(os.Args[1:])

	if *selfTest {
		emit(runSelfTest())
		return
	}
	if *recheck != "" {
		data, err := os.ReadFile(*recheck)
		h := &History{}
		if err == nil {
			err = json.Unmarshal(data, h)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "robustness: --check %s: %v\n", *recheck, err)
			os.Exit(1)
		}
		emit(check(h, *checkTimeout, *viz))
		return
	}
	if *endpoint == "" || *keys < 2 || *keys > len(keySuffixes) || *clients < 1 {
		fmt.Fprintln(os.Stderr, "robustness: --endpoint is required; --keys between 2 and 20; --clients >= 1")
		os.Exit(2)
	}
	h, stats, err := record(*endpoint, *prefix, *duration, *clients, *keys, *maxOps, *opTimeout, *seed)
	if *historyOut != "" {
		if data, jerr := json.Marshal(h); jerr == nil {
			_ = os.WriteFile(*historyOut, data, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "robustness: %v\n", err)
		os.Exit(1)
	}
	r := check(h, *checkTimeout, *viz)
	r.Seconds, r.Errors = stats.seconds, stats.errors
	emit(r)
}

func emit(v interface{}) {
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}

type runStats struct {
	seconds float64
	errors  map[string]int
}

func connect(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 10 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithBlock()},
		Logger:      zap.NewNop(),
	})
}

// record runs the traffic with a watcher on the prefix, then the resumed watches; the history is what they saw.
func record(endpoint, prefix string, duration time.Duration, nClients, nKeys, maxOps int, opTimeout time.Duration, seed int64) (*History, runStats, error) {
	var stats runStats
	var clis []*clientv3.Client
	defer func() {
		for _, c := range clis {
			_ = c.Close()
		}
	}()
	for i := 0; i <= nClients; i++ {
		c, err := connect(endpoint)
		if err != nil {
			return nil, stats, fmt.Errorf("connecting to %s: %w", endpoint, err)
		}
		clis = append(clis, c)
	}
	watchCli, workers := clis[0], clis[1:]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	h := &History{Resumed: map[int64][]Response{}}
	resp, err := watchCli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, stats, fmt.Errorf("reading the start revision: %w", err)
	}
	h.StartRev = resp.Header.Revision
	t := &traffic{prefix: prefix, duration: duration, maxOps: maxOps, opTimeout: opTimeout, seed: seed, began: time.Now()}
	for i := 0; i < nKeys; i++ {
		t.keys = append(t.keys, prefix+"k"+keySuffixes[i:i+1])
	}

	live := startWatch(ctx, watchCli, prefix, h.StartRev+1, t)
	h.Ops = t.run(ctx, workers)
	stats.seconds = time.Since(t.began).Seconds()
	stats.errors = map[string]int{}
	for _, o := range h.Ops {
		if o.Err != "" {
			stats.errors[firstLine(o.Err)]++
		}
	}
	final, err := settledRevision(ctx, watchCli)
	if err != nil {
		return h, stats, err
	}
	h.FinalRev = final
	var lastWrite int64
	for _, o := range h.Ops {
		if o.IsWrite() && o.Succeeded && o.Rev > lastWrite {
			lastWrite = o.Rev
		}
	}
	h.Watch, err = live.until(lastWrite, final)
	if err != nil {
		return h, stats, err
	}
	// resumed watches, after the traffic: from the start and from half way, up to the newest event
	var lastEvent int64
	for _, r := range h.Watch {
		for _, e := range r.Events {
			lastEvent = e.KV.ModRev
		}
	}
	for _, from := range []int64{h.StartRev + 1, h.StartRev + 1 + (final-h.StartRev)/2} {
		if from > lastEvent {
			continue
		}
		w := startWatch(ctx, watchCli, prefix, from, t)
		if h.Resumed[from], err = w.until(lastEvent, final); err != nil {
			return h, stats, err
		}
	}
	return h, stats, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// settledRevision: the store's revision once it has stopped moving (a write whose call timed out may still
// commit just after), bounded.
func settledRevision(ctx context.Context, cli *clientv3.Client) (int64, error) {
	var last int64 = -1
	stableSince := time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := cli.Get(cctx, "/", clientv3.WithCountOnly())
		cancel()
		if err != nil {
			stableSince = time.Now()
			continue
		}
		if resp.Header.Revision != last {
			last, stableSince = resp.Header.Revision, time.Now()
			continue
		}
		if time.Since(stableSince) >= time.Second {
			return last, nil
		}
	}
	return 0, fmt.Errorf("the revision did not settle (or the server did not answer) within 30s of the traffic's end")
}

type watching struct {
	ctx    context.Context
	cancel context.CancelFunc
	cli    *clientv3.Client
	mu     sync.Mutex
	resps  []Response
	// lastEvent: the newest event's revision; reached: the newest revision it has seen (events or progress).
	lastEvent int64
	reached   int64
	err       error
	done      chan struct{}
}

func startWatch(parent context.Context, cli *clientv3.Client, prefix string, from int64, t *traffic) *watching {
	ctx, cancel := context.WithCancel(parent)
	w := &watching{ctx: ctx, cancel: cancel, cli: cli, done: make(chan struct{})}
	ch := cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	go func() {
		defer close(w.done)
		for resp := range ch {
			if err := resp.Err(); err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
			r := Response{Header: resp.Header.Revision, Progress: resp.IsProgressNotify(), At: t.now()}
			for _, e := range resp.Events {
				ev := Event{Delete: e.Type == clientv3.EventTypeDelete, KV: kvOf(e.Kv)}
				if e.PrevKv != nil {
					p := kvOf(e.PrevKv)
					ev.Prev = &p
				}
				r.Events = append(r.Events, ev)
			}
			if !r.Progress && len(r.Events) == 0 {
				continue // the created response
			}
			w.mu.Lock()
			w.resps = append(w.resps, r)
			top := r.Header
			if !r.Progress {
				top = r.Events[len(r.Events)-1].KV.ModRev
				w.lastEvent = top
			}
			if top > w.reached {
				w.reached = top
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func kvOf(kv *mvccpb.KeyValue) KV {
	return KV{Key: string(kv.Key), Value: string(kv.Value), ModRev: kv.ModRevision, CreateRev: kv.CreateRevision, Version: kv.Version}
}

// until waits (bounded) until the watch's events have reached `events` (the newest write it must deliver),
// then asks for progress until it has reached `final`, and closes it; returns what it got. Progress is asked
// for only once the events are in: etcd before 3.4.25 / 3.5.8 may answer a progress request of a watch still
// catching up with the current revision, ahead of its events (etcd #15220).
func (w *watching) until(events, final int64) ([]Response, error) {
	defer func() {
		w.cancel()
		<-w.done
	}()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		w.mu.Lock()
		lastEvent, reached, err := w.lastEvent, w.reached, w.err
		w.mu.Unlock()
		if err != nil {
			return w.snapshot(), fmt.Errorf("the watch ended: %w", err)
		}
		if lastEvent < events {
			continue
		}
		if reached >= final {
			return w.snapshot(), nil
		}
		_ = w.cli.RequestProgress(w.ctx)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Response(nil), w.resps...), fmt.Errorf("the watch did not reach revision %d within 30s (events up to %d of %d, progress %d)", final, w.lastEvent, events, w.reached)
}

func (w *watching) snapshot() []Response {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Response(nil), w.resps...)
}

// check runs every check on a recorded history.
func check(h *History, timeout time.Duration, viz string) report {
	r := report{Ops: map[string]int{}, Resumed: map[string]int{}, StartRev: h.StartRev, FinalRev: h.FinalRev}
	for _, o := range h.Ops {
		r.Ops[o.Kind]++
	}
	var v []string
	r.Patch, v = patch(h)
	r.Violations = append(r.Violations, v...)
	for _, o := range h.Ops {
		if o.IsWrite() && o.Succeeded {
			r.Writes++
		}
		if o.Kind == opList && o.Err == "" {
			r.Lists++
		}
		if o.IsWrite() && !o.Succeeded && o.Err == "" {
			r.CasFailed++
		}
	}
	for _, resp := range h.Watch {
		r.Responses++
		r.Events += len(resp.Events)
		if resp.Progress {
			r.Progress++
		}
	}
	for from, resps := range h.Resumed {
		r.Resumed[fmt.Sprint(from)] = len(flatten(resps))
	}
	r.Violations = append(r.Violations, checkRevisions(h.Ops)...)
	r.Violations = append(r.Violations, checkWatch(h)...)
	r.Violations = append(r.Violations, checkLists(h)...)
	r.Linearizable = checkLinearizable(h.Ops, timeout, viz)
	if r.Linearizable != "Ok" {
		r.Violations = append(r.Violations, fmt.Sprintf("linearizability: porcupine says %s (keys whose history is not linearizable: %v)", r.Linearizable, illegalKeys(h.Ops, timeout)))
	}
	if r.Violations == nil {
		r.Violations = []string{}
	}
	r.OK = len(r.Violations) == 0
	return r
}
