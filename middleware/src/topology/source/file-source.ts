/**
 * `file://path`: a topology document on disk, watched. fs.watch is on the directory, not the file, because
 * editors replace the file (write a temp file, rename it over) and Kubernetes ConfigMap/Secret volumes swap a
 * `..data` symlink; a watch on the file itself would stay on the old inode. A slow re-stat catches what
 * fs.watch misses (network filesystems, a directory created later, dropped events).
 */
import { watch, type FSWatcher, type Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../log.js';
import { parseTopology } from '../validate.js';
import { SourceCore, TopologySourceError, type SourceReading, type TopologySource, type TopologySourceHandlers } from './source.js';

/** Events within this window are one change (an editor's save or a volume update is several events). */
const DEBOUNCE_MS = 100;

export interface FileSourceOptions {
  logger: Logger;
  /** Fallback re-stat interval (ms). */
  statIntervalMs: number;
  /** Use fs.watch (false: only the re-stat). */
  watch: boolean;
}

/** What identifies one version of the file without reading it (stat follows symlinks, so a swap changes it). */
function signature(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** A topology file, read at start and whenever it (or the symlinks leading to it) change. */
export class FileTopologySource implements TopologySource {
  readonly description: string;
  /** Absolute path of the file. */
  readonly path: string;
  private readonly core: SourceCore;
  private watcher?: FSWatcher;
  private watchedDirIno?: number;
  private debounce?: NodeJS.Timeout;
  private statTimer?: NodeJS.Timeout;
  /** Signature at the last read ("missing" when it did not exist). */
  private lastSignature?: string;

  /** `filePath` relative to the working directory or absolute. */
  constructor(
    filePath: string,
    private readonly opts: FileSourceOptions,
  ) {
    this.path = path.resolve(filePath);
    this.description = `file://${this.path}`;
    this.core = new SourceCore(this.description, opts.logger);
  }

  async start(handlers: TopologySourceHandlers): Promise<void> {
    await this.core.start(handlers, async () => {
      // watch before the first read, so a change during the read is not lost
      if (this.opts.watch) await this.ensureWatch();
      await this.core.deliverNow(() => this.read(), false);
      this.scheduleStat();
    });
  }

  async reload(): Promise<void> {
    this.core.requireStarted('reload()');
    await this.core.deliverNow(() => this.read(), true);
  }

  async stop(): Promise<void> {
    clearTimeout(this.debounce);
    clearTimeout(this.statTimer);
    this.watcher?.close();
    this.watcher = undefined;
    await this.core.stop();
  }

  private async read(): Promise<SourceReading> {
    let text: string;
    try {
      // stat before reading: if the file changes in between, the next re-stat sees a newer signature
      this.lastSignature = signature(await stat(this.path));
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') {
        this.lastSignature = 'missing';
        return this.failure('the file does not exist; create it or fix TOPOLOGY_CONFIG (the middleware watches for it to appear)');
      }
      this.lastSignature = undefined;
      return this.failure(`cannot be read (${err.code ?? err.message}); check that the file is readable by the middleware`);
    }
    try {
      return { kind: 'document', document: parseTopology(text, this.description), origin: this.description };
    } catch (e) {
      return { kind: 'error', error: e as Error };
    }
  }

  private failure(problem: string): SourceReading {
    return { kind: 'error', error: new TopologySourceError(this.description, problem) };
  }

  /** Watches the file's directory; re-watches when the directory was replaced or appeared since. */
  private async ensureWatch(): Promise<void> {
    const dir = path.dirname(this.path);
    let dirIno: number;
    try {
      dirIno = (await stat(dir)).ino;
    } catch {
      this.closeWatcher();
      return;
    }
    if (this.core.stopped || (this.watcher && this.watchedDirIno === dirIno)) return;
    this.closeWatcher();
    const base = path.basename(this.path);
    try {
      const w = watch(dir, { persistent: false }, (_event, name) => {
        // our file, or Kubernetes' atomic writer swapping "..data"; a null name means "something changed"
        if (name == null || name === base || String(name).startsWith('..')) this.changed();
      });
      w.on('error', (err) => {
        this.opts.logger.debug('fs.watch on the topology directory failed; relying on re-stat', { source: this.description, error: err.message });
        w.close();
        if (this.watcher === w) this.watcher = undefined;
      });
      this.watcher = w;
      this.watchedDirIno = dirIno;
    } catch (e) {
      this.opts.logger.debug('cannot watch the topology directory; relying on re-stat', { source: this.description, error: (e as Error).message });
    }
  }

  private closeWatcher(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  private changed(): void {
    if (this.core.stopped) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.core.refresh(() => this.read(), false), DEBOUNCE_MS);
    this.debounce.unref();
  }

  private scheduleStat(): void {
    if (this.core.stopped) return;
    this.statTimer = setTimeout(() => void this.restat().finally(() => this.scheduleStat()), this.opts.statIntervalMs);
    this.statTimer.unref();
  }

  private async restat(): Promise<void> {
    if (this.opts.watch) await this.ensureWatch();
    let now: string | undefined;
    try {
      now = signature(await stat(this.path));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      now = code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : undefined;
    }
    if (now === undefined || now !== this.lastSignature) void this.core.refresh(() => this.read(), false);
  }
}
