// loadgen: the bench's load generator, on etcd's official Go client (clientv3), so that the client side of
// a row costs a fraction of a core and the server is what is measured.
//
//	loadgen --endpoint 127.0.0.1:2379 --row put --clients 64 --duration 5s --max-ops 100000
//
// One invocation runs one row against one server: setup (data loaded, connections up, not measured), a
// short warm-up, then the measured phase, bounded by --max-ops and --duration both. Just before the
// measured phase it prints the line "measuring" on stdout, and right after it one line of JSON (ops/s,
// latency percentiles, errors, the generator's own CPU seconds), so the caller can sample the server's CPU
// over exactly the same window. Diagnostics go to stderr; exit 0 unless the row could not run at all.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

type config struct {
	endpoint     string
	row          string
	clients      int
	conns        int
	duration     time.Duration
	maxOps       int
	warmup       time.Duration
	prefix       string
	namespaces   int
	keys         int
	valueSize    int
	serializable bool
	pageSize     int
	watchers     int
	interval     time.Duration
	setupTimeout time.Duration
}

const usage = `usage: loadgen --endpoint HOST:PORT --row ROW [flags]
rows:
  put     Put of a new key per op
  get     Range of one of --keys preloaded keys (linearizable; --serializable for serializable)
  txn     kube's CAS update: If(mod(k)==rev) Then(Put k) Else(Range k), one key per client
  list    paged list of --keys preloaded keys, pages of --page-size pinned to the first page's revision
  watch   put -> event latency at --watchers watchers of one prefix, one put every --interval (--max-ops puts)
  load    store --keys keys of --value-size bytes as fast as possible (for memory phases); ops = keys
SIGUSR1 ends the measured phase of put, get, txn and list early; its result line is printed as usual.
`

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&c.endpoint, "endpoint", "", "server address HOST:PORT (loopback only)")
	fs.StringVar(&c.row, "row", "", "put | get | txn | list | watch | load")
	fs.IntVar(&c.clients, "clients", 1, "concurrent clients, each one operation at a time")
	fs.IntVar(&c.conns, "conns", 0, "gRPC connections the clients share (default min(clients, 4))")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "bound on the measured phase")
	fs.IntVar(&c.maxOps, "max-ops", 100_000, "bound on operations in the measured phase")
	fs.DurationVar(&c.warmup, "warmup", 700*time.Millisecond, "warm-up before the measured phase (not measured)")
	fs.StringVar(&c.prefix, "prefix", "/registry/bench/", "key prefix of this run (distinct per run)")
	fs.IntVar(&c.namespaces, "namespaces", 0, "spread the keys of every row over N namespaces: PREFIX/ns-<i mod N>/... (0: PREFIX/...)")
	fs.IntVar(&c.keys, "keys", 1000, "keys preloaded (get, list) or stored (load)")
	fs.IntVar(&c.valueSize, "value-size", 256, "value bytes (random)")
	fs.BoolVar(&c.serializable, "serializable", false, "get: serializable instead of linearizable reads")
	fs.IntVar(&c.pageSize, "page-size", 100, "list: keys per page")
	fs.IntVar(&c.watchers, "watchers", 100, "watch: watch streams")
	fs.DurationVar(&c.interval, "interval", 20*time.Millisecond, "watch: gap between puts")
	fs.DurationVar(&c.setupTimeout, "setup-timeout", 10*time.Minute, "bound on setup (preloading) and on the load row")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.endpoint == "" || c.row == "" {
		return c, errors.New("--endpoint and --row are required")
	}
	if err := loopbackOnly(c.endpoint); err != nil {
		return c, err
	}
	if c.clients < 1 || c.maxOps < 1 || c.duration <= 0 || c.keys < 1 || c.pageSize < 1 || c.watchers < 1 {
		return c, errors.New("--clients, --max-ops, --duration, --keys, --page-size and --watchers must be positive")
	}
	if c.namespaces < 0 {
		return c, errors.New("--namespaces must not be negative")
	}
	if c.conns <= 0 {
		c.conns = min(c.clients, 4)
	}
	return c, nil
}

// loopbackOnly refuses any endpoint that is not a loopback address: the bench never loads a real network.
func loopbackOnly(endpoint string) error {
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return fmt.Errorf("--endpoint %q: %v (want HOST:PORT)", endpoint, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--endpoint %q: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed", endpoint)
	}
	return nil
}

// newClients opens n clients, each its own gRPC connection (clientv3 multiplexes all calls of one client
// on one HTTP/2 connection), and waits until each is connected so connection setup is never measured.
func newClients(endpoint string, n int) ([]*clientv3.Client, error) {
	out := make([]*clientv3.Client, 0, n)
	for i := 0; i < n; i++ {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:          []string{endpoint},
			DialTimeout:        10 * time.Second,
			DialOptions:        []grpc.DialOption{grpc.WithBlock()},
			MaxCallRecvMsgSize: 256 << 20,
			Logger:             zap.NewNop(),
		})
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("connecting to %s: %w", endpoint, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func closeAll(cs []*clientv3.Client) {
	for _, c := range cs {
		_ = c.Close()
	}
}

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGUSR1)
	go func() {
		<-stop
		stopRequested.Store(true)
	}()
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(2)
	}
	if _, err := run(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen %s on %s: %v\n", cfg.row, cfg.endpoint, err)
		os.Exit(1)
	}
}

func run(cfg config) (*Result, error) {
	clients, err := newClients(cfg.endpoint, cfg.conns)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	setupCtx, cancel := context.WithTimeout(context.Background(), cfg.setupTimeout)
	defer cancel()

	var r runner
	switch cfg.row {
	case "put":
		r = putRunner(cfg, clients)
	case "get":
		r, err = getRunner(setupCtx, cfg, clients)
	case "txn":
		r, err = txnRunner(setupCtx, cfg, clients)
	case "list":
		r, err = listRunner(setupCtx, cfg, clients)
	case "watch":
		return runWatch(setupCtx, cfg, clients)
	case "load":
		return runLoad(setupCtx, cfg, clients)
	default:
		return nil, fmt.Errorf("unknown --row %q (%s)", cfg.row, strings.TrimSpace(strings.Split(usage, "\n")[0]))
	}
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	if cfg.warmup > 0 {
		w := closedLoop(cfg.clients, max(1, cfg.maxOps/10), cfg.warmup, r("warmup"), false)
		if w.Errors > 0 {
			return nil, fmt.Errorf("warm-up: %d errors, first: %s", w.Errors, w.FirstError)
		}
	}
	return measure(func() *Result { return closedLoop(cfg.clients, cfg.maxOps, cfg.duration, r("measure"), true) })
}

// measure prints the "measuring" marker, runs the phase and prints its result with the CPU it cost us.
func measure(phase func() *Result) (*Result, error) {
	fmt.Println("measuring")
	cpu0 := cpuSeconds()
	res := phase()
	res.CPUSeconds = cpuSeconds() - cpu0
	if res.Seconds > 0 {
		res.ClientCores = res.CPUSeconds / res.Seconds
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	fmt.Println(string(out))
	return res, nil
}
