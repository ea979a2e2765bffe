/**
 * Reads a V8 .cpuprofile (written by `node --cpu-prof`) and sums self time per function and per category,
 * counting only samples inside a time window (the measured phase: startup, tsx compilation and data
 * loading are excluded). V8 timestamps are CLOCK_MONOTONIC microseconds, the clock of
 * process.hrtime(), so the bench's own window marks apply directly.
 */
import { readFile } from 'node:fs/promises';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Share {
  name: string;
  ms: number;
  /** Percent of busy (non-idle) time in the window. */
  pct: number;
}

export interface FunctionShare extends Share {
  category: string;
  location: string;
  /** The nearest callers (tsx output is one line per file, so anonymous functions need context). */
  callers: string;
}

export interface ProfileSummary {
  samples: number;
  windowMs: number;
  busyMs: number;
  idleMs: number;
  categories: Share[];
  functions: FunctionShare[];
}

const REPO_MARK = '/middleware/src/';
/**
 * better-sqlite3 calls are synchronous C++ API callbacks: V8 gives them no frame of their own, so their time
 * (SQLite itself, and the fsync of COMMIT under synchronous=FULL) is self time of the calling functions in
 * the SQLite backend, which are otherwise thin wrappers.
 */
const SQLITE_BACKEND = /^backends\/sql\/sqlite\.[jt]s$/;
/** Message encode/decode: protobufjs (and its generated codecs), proto-loader's glue, long for int64. */
const PROTOBUF = 'protobuf encode/decode';

/** node_modules/<pkg>/... -> the package name (scoped names kept whole). */
function packageOf(url: string): string | undefined {
  const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  return m?.[1];
}

/** The bucket a JS frame's self time goes to; undefined for native frames (no url). */
function categoryOfJs(frame: CallFrame): string | undefined {
  const { functionName: name, url } = frame;
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)') return 'idle';
  if (name === '(program)') return 'V8 (program)';
  if (name === '(root)') return 'root';
  // protobufjs compiles its codecs with new Function(): JS with a line number but no url
  if (!url) return frame.lineNumber >= 0 ? PROTOBUF : undefined;
  const pkg = packageOf(url);
  if (pkg) {
    if (pkg === '@grpc/grpc-js') return 'grpc-js';
    if (pkg === 'protobufjs' || pkg.startsWith('@protobufjs/') || pkg === '@grpc/proto-loader' || pkg === 'long') return PROTOBUF;
    if (pkg === 'tsx' || pkg === 'esbuild' || pkg === 'get-tsconfig') return 'tsx loader';
    return pkg;
  }
  const i = url.indexOf(REPO_MARK);
  if (i >= 0) {
    const rest = url.slice(i + REPO_MARK.length);
    if (SQLITE_BACKEND.test(rest)) return 'SQLite: better-sqlite3 calls in sqlite.ts (engine + fsync, blocking)';
    const dir = rest.includes('/') ? rest.slice(0, rest.lastIndexOf('/')) : rest;
    return `ours: ${dir}`;
  }
  if (url.startsWith('node:internal/http2') || url === 'node:http2') return 'node: http2';
  if (/^node:(net|internal\/(streams?|stream_base_commons|net))/.test(url)) return 'node: net/streams';
  if (url.startsWith('node:')) return 'node: other';
  return 'other';
}

function shortLocation(frame: CallFrame): string {
  const { url, lineNumber, columnNumber } = frame;
  if (!url) return lineNumber >= 0 ? '(generated)' : '(native)';
  const pkg = packageOf(url);
  const short = pkg
    ? `${pkg}/${url.slice(url.lastIndexOf('/') + 1)}`
    : url.includes(REPO_MARK)
      ? url.slice(url.indexOf(REPO_MARK) + 1)
      : url.replace(/^file:\/\//, '');
  // tsx emits each of our files as one line: the column is what tells functions apart
  return lineNumber === 0 ? `${short}:1:${columnNumber + 1}` : `${short}:${lineNumber + 1}`;
}

function frameName(frame: CallFrame): string {
  return frame.functionName || '(anonymous)';
}

export async function summarizeProfile(file: string, windowUs?: [number, number], top = 25): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // native frames (C++ bindings: SQLite, nghttp2, socket writes) are attributed to their nearest JS caller's category
  const categoryCache = new Map<number, string>();
  const categoryOf = (id: number): string => {
    let cat = categoryCache.get(id);
    if (cat) return cat;
    const node = byId.get(id)!;
    cat = categoryOfJs(node.callFrame);
    if (cat === undefined) {
      let p = parent.get(id);
      let callerCat: string | undefined;
      while (p !== undefined && callerCat === undefined) {
        callerCat = categoryOfJs(byId.get(p)!.callFrame);
        p = parent.get(p);
      }
      cat = `native <- ${callerCat ?? 'root'}`;
    }
    categoryCache.set(id, cat);
    return cat;
  };

  const selfUs = new Map<number, number>();
  let t = profile.startTime;
  let samples = 0;
  const times: number[] = [];
  for (const d of profile.timeDeltas) times.push((t += d));
  for (let i = 0; i < profile.samples.length; i++) {
    const at = times[i]!;
    if (windowUs && (at < windowUs[0] || at > windowUs[1])) continue;
    // a sample stands for the time until the next one
    const dur = i + 1 < times.length ? times[i + 1]! - at : 0;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dur);
    samples++;
  }

  const categories = new Map<string, number>();
  const callersOf = (id: number): string => {
    const names: string[] = [];
    for (let p = parent.get(id); p !== undefined && names.length < 3; p = parent.get(p)) {
      const f = byId.get(p)!.callFrame;
      if (f.functionName === '(root)') break;
      names.push(frameName(f));
    }
    return names.join(' <- ');
  };
  const functions = new Map<string, { category: string; location: string; name: string; callers: string; us: number }>();
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    const category = categoryOf(id);
    totalUs += us;
    if (category === 'idle') {
      idleUs += us;
      continue;
    }
    categories.set(category, (categories.get(category) ?? 0) + us);
    const location = shortLocation(frame);
    const name = frameName(frame);
    const key = `${name}|${frame.url}|${frame.lineNumber}|${frame.columnNumber}|${category}`;
    // callers of the first node seen; the same function reached through other paths is summed in
    const f = functions.get(key) ?? { category, location, name, callers: callersOf(id), us: 0 };
    f.us += us;
    functions.set(key, f);
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number) => (busyUs > 0 ? (100 * us) / busyUs : 0);
  return {
    samples,
    windowMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    categories: [...categories]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ name, ms: us / 1000, pct: pct(us) })),
    functions: [...functions.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, category: f.category, location: f.location, callers: f.callers, ms: f.us / 1000, pct: pct(f.us) })),
  };
}

export function formatProfile(row: string, s: ProfileSummary): string {
  const lines = [
    `profile ${row}: ${s.samples} samples, ${s.windowMs.toFixed(0)} ms window, busy ${s.busyMs.toFixed(0)} ms (${((100 * s.busyMs) / Math.max(1, s.windowMs)).toFixed(0)}%), idle ${s.idleMs.toFixed(0)} ms`,
    '  self time by category (% of busy):',
    ...s.categories.filter((c) => c.pct >= 0.5).map((c) => `    ${c.pct.toFixed(1).padStart(5)}%  ${c.ms.toFixed(0).padStart(6)} ms  ${c.name}`),
    '  top functions by self time:',
    ...s.functions.map(
      (f) => `    ${f.pct.toFixed(1).padStart(5)}%  ${f.ms.toFixed(0).padStart(6)} ms  ${f.name} (${f.location})${f.callers ? ` <- ${f.callers}` : ''}  [${f.category}]`,
    ),
  ];
  return lines.join('\n');
}
