/** A Logger that records what it is given, for tests that assert on log records. */
import type { LogFields, Logger } from '../../middleware/src/log.js';

export interface LogRecord {
  level: string;
  msg: string;
  fields: LogFields;
}

export function captureLogger(records: LogRecord[], base: LogFields = {}): Logger {
  const at = (level: string) => (msg: string, fields?: LogFields) => records.push({ level, msg, fields: { ...base, ...fields } });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (f) => captureLogger(records, { ...base, ...f }) };
}
