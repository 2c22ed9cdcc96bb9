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
    const name = /^\/webhooks\/([^/?]+)/.exec(req.originalUrl)?.[1] ?? '';
    const source = sources().includes(name) ? name : 'unknown';
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
