/** Reading Prometheus text pages (a /metrics endpoint) in tests. */

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
