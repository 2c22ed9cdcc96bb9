import type { Logger } from '../../src/logger';

/** A logger that keeps every line it is given (as JSON text, its fields included), for tests that read them back. */
export function collectingLogger(lines: string[]): Logger {
  const push = (level: string) => (msg: string, fields: Record<string, unknown> = {}) => void lines.push(JSON.stringify({ level, msg, ...fields }));
  const log: Logger = { debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error'), child: () => log };
  return log;
}
