import { timingSafeEqual, createHash } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { DataSource } from 'typeorm';
import type { GrammarRegistry } from '../connectors/registry';
import type { EvidenceStore } from '../evidence/evidence-store';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import type { ChangeWorkflows } from '../temporal/temporal-client';
import { closureCheck, evidenceBundle } from './changes';
import { scanInventory } from './inventory';
import { receiveServiceNowDelivery } from './servicenow-webhook';

export interface AppDeps {
  ds: DataSource;
  workflows: ChangeWorkflows;
  grammars: GrammarRegistry;
  evidence: EvidenceStore;
  webhookSecret: string;
  adminToken: string;
  maxBodyBytes: number;
  log: Logger;
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res) => {
    const checks = await Promise.all([
      deps.ds.query('SELECT 1').then(() => 'ok', (e: Error) => `down: ${e.message}`),
      deps.workflows.ping().then(() => 'ok', (e: Error) => `down: ${e.message}`),
    ]);
    const [database, temporal] = checks;
    const ready = checks.every((c) => c === 'ok');
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not-ready', database, temporal });
  });

  // Raw bytes: the signature covers exactly what was sent, so the body is parsed only after it is verified.
  app.post(
    '/webhooks/servicenow',
    express.raw({ type: () => true, limit: deps.maxBodyBytes }),
    async (req: Request, res: Response) => {
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const result = await receiveServiceNowDelivery({ ...deps, secret: deps.webhookSecret }, raw, req.headers);
      res.status(202).json(result);
    },
  );

  const requireAdmin = bearer(deps.adminToken);
  app.get('/api/changes/servicenow/:number/closure-check', requireAdmin, async (req, res) => {
    res.json(await closureCheck(deps, String(req.params.number)));
  });
  app.get('/api/changes/servicenow/:number/evidence', requireAdmin, async (req, res) => {
    res.json(await evidenceBundle(deps, String(req.params.number)));
  });

  app.post('/api/inventory/scan', requireAdmin, express.json({ limit: '16kb' }), async (req, res) => {
    res.json(await scanInventory(deps, req.body as unknown));
  });

  app.use((req, _res, next) => next(new AppError(404, 'NOT_FOUND', `no route for ${req.method} ${req.path}`)));
  app.use(errorMiddleware(deps.log));
  return app;
}

/** Compares digests so neither the token's length nor its prefix leaks through timing. */
function bearer(token: string) {
  const expected = createHash('sha256').update(token).digest();
  return (req: Request, _res: Response, next: NextFunction) => {
    const header = req.get('authorization') ?? '';
    const given = /^Bearer (.+)$/.exec(header)?.[1];
    const ok = given !== undefined && timingSafeEqual(createHash('sha256').update(given).digest(), expected);
    next(ok ? undefined : new AppError(401, 'UNAUTHORIZED', 'a valid bearer token is required'));
  };
}

/** The one place errors become responses. Only AppErrors speak; anything else is a logged, detail-free 500. */
function errorMiddleware(log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const bodyError = err as { type?: string; status?: number };
    let appErr: AppError;
    if (err instanceof AppError) appErr = err;
    else if (bodyError?.type === 'entity.too.large') appErr = new AppError(413, 'PAYLOAD_TOO_LARGE', 'request body exceeds the size limit');
    else if (bodyError?.type === 'encoding.unsupported' || bodyError?.type === 'charset.unsupported') {
      appErr = new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'unsupported content encoding or charset');
    } else if (typeof bodyError?.status === 'number' && bodyError.status >= 400 && bodyError.status < 500) {
      appErr = new AppError(400, 'VALIDATION_FAILED', 'malformed request');
    } else {
      log.error('unhandled error', { method: req.method, path: req.path, error: err instanceof Error ? err.message : String(err) });
      appErr = new AppError(500, 'INTERNAL', 'internal error');
    }
    if (appErr.status >= 500 && appErr.code !== 'INTERNAL') {
      const cause = (appErr.cause as Error | undefined)?.message;
      log.warn('request failed', { path: req.path, code: appErr.code, cause });
    }
    res.status(appErr.status).json({ error: { code: appErr.code, message: appErr.message, issues: appErr.issues } });
  };
}
