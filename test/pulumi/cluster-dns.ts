/**
 * The cluster's DNS, for a process a test runs in place of a pod (`node --import <this file> ...`): a name
 * under `.svc` or `.svc.cluster.local` resolves through the JSON map in the file HARIKUBE_TEST_CLUSTER_DNS
 * names (Service host -> loopback address, written by the stand-ins, re-read on every lookup so Services that
 * appear later resolve), every other name as usual. A `.svc` name that is not in the map fails with ENOTFOUND,
 * as a Service that does not exist does in a cluster. Nothing else of the process changes: its database
 * drivers connect to the name the topology holds, as in the pod.
 */
import dns from 'node:dns';
import { readFileSync } from 'node:fs';

const MAP_FILE = process.env.HARIKUBE_TEST_CLUSTER_DNS;
const SERVICE_NAME = /\.svc(\.cluster\.local)?\.?$/i;

/** The address of a Service host, undefined when `host` is no Service name; throws ENOTFOUND for an unknown one. */
function serviceAddress(host: string): string | undefined {
  if (!MAP_FILE || !SERVICE_NAME.test(host)) return undefined;
  let map: Record<string, string> = {};
  try {
    map = JSON.parse(readFileSync(MAP_FILE, 'utf8')) as Record<string, string>;
  } catch {
    /* not written yet: no Service resolves */
  }
  const name = host.toLowerCase().replace(/\.$/, '').replace(/\.cluster\.local$/, '');
  const address = map[name];
  if (address) return address;
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host} (no such Service in the test cluster's DNS)`), { code: 'ENOTFOUND', errno: -3008, syscall: 'getaddrinfo', hostname: host });
}

type LookupOptions = number | dns.LookupOptions | undefined;
type Callback = (err: NodeJS.ErrnoException | null, address?: string | dns.LookupAddress[], family?: number) => void;

const originalLookup = dns.lookup;
function lookup(host: string, options: LookupOptions | Callback, callback?: Callback): void {
  const cb = (typeof options === 'function' ? options : callback)!;
  const opts: dns.LookupOptions = typeof options === 'object' && options !== null ? options : typeof options === 'number' ? { family: options } : {};
  let address: string | undefined;
  try {
    address = serviceAddress(host);
  } catch (err) {
    process.nextTick(cb, err as NodeJS.ErrnoException);
    return;
  }
  if (address === undefined) {
    (originalLookup as (h: string, o: dns.LookupOptions, c: Callback) => void).call(dns, host, opts, cb);
    return;
  }
  if (opts.all) process.nextTick(cb, null, [{ address, family: 4 }]);
  else process.nextTick(cb, null, address, 4);
}
(dns as { lookup: unknown }).lookup = lookup;

const originalPromiseLookup = dns.promises.lookup;
(dns.promises as { lookup: unknown }).lookup = async (host: string, options?: number | dns.LookupOptions) => {
  const address = serviceAddress(host);
  if (address === undefined) return originalPromiseLookup(host, (typeof options === 'number' ? { family: options } : options ?? {}) as dns.LookupAllOptions);
  const opts = typeof options === 'object' ? options : {};
  return opts.all ? [{ address, family: 4 }] : { address, family: 4 };
};
