import { SpanKind, SpanStatusCode, context, trace, type Tracer } from '@opentelemetry/api';
import type { NextFunction, Request, Response } from 'express';
import { deliverySource } from '../metrics/delivery-metrics';

/**
 * A server span around each webhook delivery, made the active context of everything the delivery does — the
 * Temporal client's signal-with-start among it, which carries it into the workflow and on to its activities.
 */
export function traceDeliveries(tracer: Tracer, sources: () => readonly string[]) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method !== 'POST') return next();
    const source = deliverySource(req, sources);
    const span = tracer.startSpan(`POST /webhooks/${source}`, { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'POST', 'changegate.source': source } });
    res.once('finish', () => {
      span.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    });
    const active = trace.setSpan(context.active(), span);
    context.with(active, next);
  };
}
