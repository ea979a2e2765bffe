/**
 * `http(s)://url`: a topology document served over HTTP, polled. Conditional requests (If-None-Match,
 * If-Modified-Since) keep an unchanged poll cheap; every request has a timeout so a hung server cannot stop
 * polling. The URL may carry credentials (user:password, or a token in the query): they are sent (userinfo as
 * Basic authorization, since fetch refuses URLs with credentials) but never appear in descriptions or errors.
 */
import type { Logger } from '../../log.js';
import { parseTopology } from '../validate.js';
import { SourceCore, TopologySourceError, type SourceReading, type TopologySource, type TopologySourceHandlers } from './source.js';

export interface HttpSourceOptions {
  logger: Logger;
  pollIntervalMs: number;
  requestTimeoutMs: number;
}

/**
 * `url` with user:password replaced by `***` and every query value by `***` (names kept, so the URL stays
 * recognisable); the fragment is dropped. Text that does not parse as a URL is redacted by pattern.
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url.replace(/\/\/[^/?#]*@/, '//***@').replace(/([?&][^=&#]*)=[^&#]*/g, '$1=***').replace(/#.*$/s, '');
  }
  const userinfo = u.username || u.password ? '***@' : '';
  const query = u.search
    ? '?' +
      u.search
        .slice(1)
        .split('&')
        .map((pair) => (pair.includes('=') ? `${pair.slice(0, pair.indexOf('='))}=***` : '***'))
        .join('&')
    : '';
  return `${u.protocol}//${userinfo}${u.host}${u.pathname}${query}`;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** A topology document at an http(s) URL, fetched at start and every poll interval. */
export class HttpTopologySource implements TopologySource {
  readonly description: string;
  /** The URL fetched: the spec without userinfo and fragment. */
  private readonly url: string;
  private readonly authorization?: string;
  /** Parts of the spec that must never show, for scrubbing text we did not write (error causes). */
  private readonly secrets: string[];
  private readonly core: SourceCore;
  private etag?: string;
  private lastModified?: string;
  /** The reading of the last 2xx response; a 304 means it still holds. */
  private cached?: SourceReading;
  private timer?: NodeJS.Timeout;

  constructor(
    spec: string,
    private readonly opts: HttpSourceOptions,
  ) {
    this.description = redactUrl(spec);
    let u: URL;
    try {
      u = new URL(spec);
    } catch {
      throw new Error(`TOPOLOGY_CONFIG "${this.description}" is not a valid URL`);
    }
    const secrets = [u.username, u.password, safeDecode(u.username), safeDecode(u.password)];
    for (const value of u.searchParams.values()) secrets.push(value);
    for (const pair of u.search.slice(1).split('&')) secrets.push(pair.slice(pair.indexOf('=') + 1));
    // very short values would garble messages when scrubbed and are no credentials anyway
    this.secrets = [...new Set(secrets.filter((s) => s.length >= 3))].sort((a, b) => b.length - a.length);
    if (u.username || u.password) {
      const user = safeDecode(u.username);
      const password = safeDecode(u.password);
      this.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
      u.username = '';
      u.password = '';
    }
    u.hash = '';
    this.url = u.toString();
    this.core = new SourceCore(this.description, opts.logger);
  }

  async start(handlers: TopologySourceHandlers): Promise<void> {
    await this.core.start(handlers, async () => {
      await this.core.deliverNow(() => this.fetchReading(false), false);
      this.schedule();
    });
  }

  async reload(): Promise<void> {
    this.core.requireStarted('reload()');
    // unconditional: a reload re-reads the document, it does not trust the cache
    await this.core.deliverNow(() => this.fetchReading(false), true);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    await this.core.stop();
  }

  private schedule(): void {
    if (this.core.stopped) return;
    this.timer = setTimeout(() => {
      // wait for the read (not the delivery): polls go on during a slow onUpdate and are coalesced
      void this.core.refresh(() => this.fetchReading(true), false).finally(() => this.schedule());
    }, this.opts.pollIntervalMs);
    this.timer.unref();
  }

  private async fetchReading(conditional: boolean): Promise<SourceReading> {
    const headers: Record<string, string> = { accept: 'application/yaml, application/json, text/plain;q=0.9, */*;q=0.5' };
    if (this.authorization) headers.authorization = this.authorization;
    if (conditional && this.cached) {
      if (this.etag) headers['if-none-match'] = this.etag;
      if (this.lastModified) headers['if-modified-since'] = this.lastModified;
    }
    const signal = AbortSignal.timeout(this.opts.requestTimeoutMs);
    let text: string;
    let response: Response;
    try {
      response = await fetch(this.url, { headers, signal });
      if (response.status === 304) {
        await response.body?.cancel();
        if (this.cached) return this.cached;
        return this.failure('answered 304 Not Modified to a request that was not conditional; check the server');
      }
      if (!response.ok) {
        await response.body?.cancel();
        return this.failure(`HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}; the last good topology stays active`);
      }
      text = await response.text(); // the timeout covers the body too
    } catch (e) {
      if (signal.aborted) return this.failure(`no complete response within ${this.opts.requestTimeoutMs} ms; the last good topology stays active`);
      const err = e as Error & { cause?: { message?: string; code?: string } };
      const why = err.cause?.message ?? err.message;
      return this.failure(`request failed: ${this.scrub(why)}; the last good topology stays active`);
    }
    this.etag = response.headers.get('etag') ?? undefined;
    this.lastModified = response.headers.get('last-modified') ?? undefined;
    try {
      this.cached = { kind: 'document', document: parseTopology(text, this.description), origin: this.description };
    } catch (e) {
      this.cached = { kind: 'error', error: e as Error };
    }
    return this.cached;
  }

  private failure(problem: string): SourceReading {
    return { kind: 'error', error: new TopologySourceError(this.description, problem) };
  }

  private scrub(text: string): string {
    let out = text;
    for (const s of this.secrets) out = out.split(s).join('***');
    return out;
  }
}
