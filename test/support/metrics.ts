/** Reading a middleware's Prometheus /metrics page in tests. */
import type { Middleware } from './middleware.js';

/** The /metrics page of a middleware; with `timeoutMs`, a fetch that takes longer fails. */
export async function metricsPage(m: Pick<Middleware, 'metricsAddress'>, timeoutMs?: number): Promise<string> {
  return (await fetch(`http://${m.metricsAddress}/metrics`, timeoutMs ? { signal: AbortSignal.timeout(timeoutMs) } : {})).text();
}

/** The value of an unlabelled metric in a /metrics page, undefined when absent. */
export function unlabelledValue(page: string, name: string): number | undefined {
  const line = page.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

/** The value of an unlabelled metric on the middleware's /metrics, undefined when absent. */
export async function metricValue(m: Pick<Middleware, 'metricsAddress'>, name: string): Promise<number | undefined> {
  return unlabelledValue(await metricsPage(m), name);
}

/** The value of one labelled sample (e.g. `applies_total{result="refused"}`), undefined when absent. */
export async function metricSample(m: Middleware, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const text = await metricsPage(m);
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => {
    if (!l.startsWith(`${name}{`)) return false;
    const inside = l.slice(name.length + 1, l.indexOf('}'));
    return wanted.every((w) => inside.split(',').includes(w));
  });
  return line === undefined ? undefined : Number(line.slice(line.indexOf('}') + 1).trim());
}

/** Sum of the samples of metric `name` in a /metrics page, over the label sets whose line contains `match`. */
export function metricSum(page: string, name: string, match = ''): number {
  let sum = 0;
  for (const line of page.split('\n')) {
    if ((line.startsWith(`${name}{`) || line.startsWith(`${name} `)) && line.includes(match)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** `metricSum` of the page at `url`. */
export async function scrapeSum(url: string, name: string, match = ''): Promise<number> {
  return metricSum(await (await fetch(url)).text(), name, match);
}
