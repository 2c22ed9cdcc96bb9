import pino, { type Logger as PinoLogger } from 'pino';

/**
 * Structured JSON logging through pino: one line per event, a child logger per component. Callers pass fields,
 * never raw config or request headers, so secrets stay out by construction; the redaction paths below are a second
 * guard for a field that slips through under a secret-like name.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

const SECRET_KEYS = ['password', 'passwd', 'secret', 'token', 'apiKey', 'api_key', 'authorization', 'cookie', 'privateKey', 'private_key', 'secretAccessKey', 'clientSecret'];
export const REDACT_PATHS = [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`), ...SECRET_KEYS.map((k) => `*.*.${k}`), 'headers.authorization', 'req.headers.authorization', 'req.headers.cookie'];

let root: PinoLogger | undefined;
function rootLogger(): PinoLogger {
  root ??= pino({
    level: 'debug',
    base: undefined,
    messageKey: 'msg',
    timestamp: () => `,"t":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  });
  return root;
}

function wrap(p: PinoLogger): Logger {
  return {
    debug: (msg, fields) => p.debug(fields ?? {}, msg),
    info: (msg, fields) => p.info(fields ?? {}, msg),
    warn: (msg, fields) => p.warn(fields ?? {}, msg),
    error: (msg, fields) => p.error(fields ?? {}, msg),
    child: (name) => wrap(p.child({ sub: name })),
  };
}

/** A component's logger; `destination` is for tests that read the lines back. */
export function createLogger(component: string, level: Level = 'info', destination?: pino.DestinationStream): Logger {
  const base = destination
    ? pino({ level, base: undefined, messageKey: 'msg', formatters: { level: (label) => ({ level: label }) }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination)
    : rootLogger();
  return wrap(base.child({ component }, { level }));
}

/** Temporal's runtime and worker log through the same pipeline (see worker-main). */
export function temporalLogSink(log: Logger): (entry: { level: string; message: string; meta?: Record<string, unknown> }) => void {
  return (entry) => {
    const fields = entry.meta ?? {};
    switch (entry.level) {
      case 'ERROR':
        return log.error(entry.message, fields);
      case 'WARN':
        return log.warn(entry.message, fields);
      case 'INFO':
        return log.info(entry.message, fields);
      default:
        return log.debug(entry.message, fields);
    }
  };
}
