/** Where routed data physically is, and what the middleware's metrics say about its topology. */
import Database from 'better-sqlite3';
import type { Middleware } from './middleware.js';

/** Distinct keys stored in a SQLite backend file, read over a separate read-only connection. */
export function keysIn(file: string): string[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT DISTINCT name FROM kv ORDER BY name').all() as { name: Buffer }[]).map((r) => r.name.toString());
  } finally {
    db.close();
  }
}

/** The value of an unlabelled metric on the middleware's /metrics, undefined when absent. */
export async function metricValue(m: Pick<Middleware, 'metricsAddress'>, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://${m.metricsAddress}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

/** The value of one labelled sample (e.g. `applies_total{result="refused"}`), undefined when absent. */
export async function metricSample(m: Middleware, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const text = await (await fetch(`http://${m.metricsAddress}/metrics`)).text();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => {
    if (!l.startsWith(`${name}{`)) return false;
    const inside = l.slice(name.length + 1, l.indexOf('}'));
    return wanted.every((w) => inside.split(',').includes(w));
  });
  return line === undefined ? undefined : Number(line.slice(line.indexOf('}') + 1).trim());
}
