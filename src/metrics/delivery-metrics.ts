import type { NextFunction, Request, Response } from 'express';
import type { GatewayMetrics } from './metrics';

/**
 * Counts each webhook delivery once its answer is sent: by the source the path names (only names the API serves, so
 * that a caller cannot grow the label set), the outcome and the HTTP status. The outcome of a 2xx answer is what its
 * body says (duplicate, ignored), otherwise accepted; any other status is refused.
 */
export function countDeliveries(metrics: GatewayMetrics, sources: () => readonly string[]) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method !== 'POST') return next();
    const source = deliverySource(req, sources);
    let body: unknown;
    const json = res.json.bind(res);
    res.json = (b: unknown) => {
      body = b;
      return json(b);
    };
    res.once('finish', () => {
      const status = res.statusCode;
      const said = (body ?? {}) as { duplicate?: unknown; ignored?: unknown };
      const outcome = status >= 300 ? 'refused' : said.duplicate === true ? 'duplicate' : typeof said.ignored === 'string' ? 'ignored' : 'accepted';
      metrics.deliveries.inc({ source, outcome, status: String(status) });
    });
    next();
  };
}

/** The source a webhook path names, if the API serves it; `unknown` otherwise, so that no caller adds a value. */
export function deliverySource(req: Request, sources: () => readonly string[]): string {
  const name = /^\/webhooks\/([^/?]+)/.exec(req.originalUrl)?.[1] ?? '';
  return sources().includes(name) ? name : 'unknown';
}
