/**
 * Structured logging for every HariKube process: one line per record, `plain` (human) or `json`
 * (machine), to stderr. Fields are data, never secrets: pass endpoints through `redactEndpoint` first.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'plain' | 'json';
export type LogFields = Record<string, unknown>;

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every record (e.g. `{ component: 'watch' }`). */
  child(fields: LogFields): Logger;
}

interface Settings {
  level: LogLevel;
  format: LogFormat;
  write: (line: string) => void;
}

const settings: Settings = {
  level: 'info',
  format: 'plain',
  write: (line) => process.stderr.write(line + '\n'),
};

/** Sets the process-wide level and format (from `--debug` and `--log-format`). */
export function configureLogging(opts: Partial<Settings>): void {
  Object.assign(settings, opts);
}

function render(v: unknown): unknown {
  if (v instanceof Error) return v.message;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (typeof v === 'bigint') return v.toString();
  return v;
}

function emit(level: LogLevel, msg: string, base: LogFields, fields?: LogFields): void {
  if (ORDER[level] < ORDER[settings.level]) return;
  const all: LogFields = { ...base, ...fields };
  if (settings.format === 'json') {
    const rec: LogFields = { ts: new Date().toISOString(), level, msg };
    for (const [k, v] of Object.entries(all)) rec[k] = render(v);
    settings.write(JSON.stringify(rec));
    return;
  }
  const kv = Object.entries(all)
    .map(([k, v]) => {
      const r = render(v);
      const s = typeof r === 'string' ? r : JSON.stringify(r);
      return `${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
    })
    .join(' ');
  settings.write(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${msg}${kv ? ' ' + kv : ''}`);
}

function make(base: LogFields): Logger {
  return {
    debug: (m, f) => emit('debug', m, base, f),
    info: (m, f) => emit('info', m, base, f),
    warn: (m, f) => emit('warn', m, base, f),
    error: (m, f) => emit('error', m, base, f),
    child: (f) => make({ ...base, ...f }),
  };
}

export const logger: Logger = make({});
