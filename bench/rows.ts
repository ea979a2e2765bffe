/**
 * The rows of the bench and their budgets: the one place to tune how long `npm run bench` takes. Each row
 * is one tools/loadgen invocation (on etcd's Go client); every row stops at its op count or its time bound,
 * whichever comes first. With all nine targets the rows take about 9 x 11 x ~8 s (setup, 0.7 s warm-up,
 * 5 s measured) plus startup: ~15 minutes on busy shared cores (the layered targets' setup loads more
 * slowly); `--rows` and `--targets` make it short.
 */
export interface Row {
  /** Row name, e.g. "put-64"; also what --rows and --profile take. */
  readonly name: string;
  /** One line for the report. */
  readonly what: string;
  /** loadgen flags of the row (endpoint and prefix are added per run). */
  readonly args: readonly string[];
  /** Bound on the whole loadgen run (setup, warm-up, measurement); it is killed beyond it. */
  readonly timeoutMs: number;
}

const SECONDS = 1_000;
/** Measured phase of the closed-loop rows, as in the reference runs. */
const MEASURE = '5s';

function closedLoop(name: string, what: string, row: string, clients: number, maxOps: number, extra: string[] = []): Row {
  return {
    name,
    what,
    args: ['--row', row, '--clients', String(clients), '--duration', MEASURE, '--max-ops', String(maxOps), ...extra],
    timeoutMs: 180 * SECONDS,
  };
}

/** put -> event latency, puts sent open-loop at a fixed rate; ops/s of the row = events delivered per second. */
function watchRow(name: string, watchers: number, interval: string, puts: number, duration: string): Row {
  const rate = Math.round(1000 / Number(interval.replace('ms', '')));
  return {
    name,
    what: `put -> event latency at ${watchers} watchers of one prefix (own streams), puts sent open-loop at ${rate}/s, ${puts} puts`,
    args: ['--row', 'watch', '--watchers', String(watchers), '--interval', interval, '--max-ops', String(puts), '--duration', duration],
    timeoutMs: 120 * SECONDS,
  };
}

export const ROWS: readonly Row[] = [
  closedLoop('put-1', 'Put of a new key (256 B value), 1 client', 'put', 1, 50_000),
  closedLoop('put-16', 'Put of a new key, 16 clients', 'put', 16, 200_000),
  closedLoop('put-64', 'Put of a new key, 64 clients', 'put', 64, 200_000),
  closedLoop('get-1', 'linearizable Range of one existing key (of 1000), 1 client', 'get', 1, 100_000),
  closedLoop('get-16', 'linearizable Range of one existing key, 16 clients', 'get', 16, 400_000),
  closedLoop('get-1-ser', 'serializable Range of one existing key, 1 client', 'get', 1, 100_000, ['--serializable']),
  closedLoop('get-16-ser', 'serializable Range of one existing key, 16 clients', 'get', 16, 400_000, ['--serializable']),
  closedLoop('txn-16', 'CAS update Txn [MOD(k)==rev] -> [Put] else [Range k], 16 clients on distinct keys', 'txn', 16, 200_000),
  closedLoop('list-500', 'paged list of 500 keys, pages of 100 pinned to the first page\'s revision, 4 clients', 'list', 4, 50_000, ['--keys', '500']),
  {
    ...closedLoop('list-10000', 'paged list of 10,000 keys, pages of 500 pinned, 4 clients', 'list', 4, 5_000, ['--keys', '10000', '--page-size', '500']),
    timeoutMs: 300 * SECONDS,
  },
  watchRow('watch-100', 100, '10ms', 500, '5s'),
];

/**
 * Rows run only when named in --rows. watch-100-1k is the write rate: on the shared 2-core machine
 * no server (etcd included) kept up with it, every one fell more than 512 puts behind within 3 s.
 */
export const OPT_IN_ROWS: readonly Row[] = [watchRow('watch-100-1k', 100, '1ms', 3000, '3s')];

/** Rows compared on latency rather than throughput (their ratio column is p99). */
export const LATENCY_ROWS = new Set(['watch-100', 'watch-100-1k']);

export function rowNamed(name: string): Row {
  const row = [...ROWS, ...OPT_IN_ROWS].find((r) => r.name === name);
  if (!row) throw new Error(`unknown row "${name}" (rows: ${[...ROWS, ...OPT_IN_ROWS].map((r) => r.name).join(', ')})`);
  return row;
}
