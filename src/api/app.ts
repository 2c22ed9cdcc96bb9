import express, { type NextFunction, type Request, type Response } from 'express';
import { DEFAULT_POLL_SILENCE_MS, pollReport } from '../temporal/poll-watch';
import type { DataSource } from 'typeorm';
import { ApiTokenStore } from '../auth/api-tokens';
import { Authenticator } from '../auth/authenticator';
import { JwtVerifier, type OidcSettings } from '../auth/jwt-verifier';
import { createRequireRoles, principalOf } from '../auth/require-roles';
import type { GrammarRegistry } from '../connectors/registry';
import type { EvidenceSigner } from '../evidence/evidence-signing';
import type { EvidenceStore } from '../evidence/evidence-store';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import { engineFailure } from '../temporal/engine-errors';
import type { ChangeWorkflows } from '../temporal/temporal-client';
import type { ClosureVerdictStore } from '../closure/verdict-store';
import { InventoryStore } from '../inventory/inventory-store';
import { ticketSource, ticketSourceNames, writeBacks } from '../itsm/registry';
import type { SourceClients, SourceSettings, TicketSource, TicketWriteBack } from '../itsm/source';
import { Policy } from '../policy/policy';
import { changeAgeing, listChanges } from './change-list';
import { type DashboardConfig, mountDashboard } from './dashboard';
import { closureCheck, evidenceBundle, evidenceExport, evidencePublicKey } from './changes';
import { decideStep } from './decisions';
import { decideException, listExceptions } from './exceptions';
import { ExceptionStore } from '../exceptions/exception-store';
import { receiveDelivery } from './deliveries';
import { databaseUnavailable, unavailable } from './unavailable';
import { receiveDeployEvent } from './deploy-webhook';
import { receiveLeakReport } from './leak-webhook';
import { listDrift } from './drift';
import { certifyOwnerChange, decideCertification, listCertifications } from './certifications';
import { CertificationStore } from '../certification/certification-store';
import { DriftStore } from '../drift/drift-store';
import type { GitHubSettings } from '../leaks/github-alerts';
import { listInventory, scanInventory, scanRecord, setOwnership } from './inventory';
import { createToken, listTokens, revokeToken } from './tokens';
import { reportTargets } from './target-health';
import { reportKinds } from './kind-split';
import { reportLatency } from './step-latency';
import { reportDeployCredentials } from './deploy-credentials';
import { openApiDocument } from './openapi';
import { countDeliveries } from '../metrics/delivery-metrics';
import type { GatewayMetrics } from '../metrics/metrics';
import type { Tracer } from '@opentelemetry/api';
import { traceDeliveries } from '../telemetry/delivery-spans';

export interface AppDeps {
  ds: DataSource;
  workflows: ChangeWorkflows;
  grammars: GrammarRegistry;
  evidence: EvidenceStore;
  /** The published closure verdicts closure-check reads, sealed with the evidence seal key. */
  verdicts: ClosureVerdictStore;
  /** Signs evidence exports (CHANGEGATE_EVIDENCE_SIGNING_KEY); without it exports and the public key answer 503. */
  evidenceSigner?: EvidenceSigner;
  /** ServiceNow's shared secret (SERVICENOW_WEBHOOK_SECRET). */
  webhookSecret: string;
  /** Pipelines' shared secret (DEPLOY_WEBHOOK_SECRET); without it every deploy event is refused. */
  deployWebhookSecret?: string;
  /** Shared secrets of other ticket sources, by source name. */
  sourceSecrets?: Readonly<Record<string, string>>;
  /** Secret scanners' reports (POST /webhooks/secret-scanning): their shared secret, and GitHub to fetch alerts from. */
  leaks?: { webhookSecret?: string; github?: GitHubSettings };
  /** Stays valid as an operator token, so integrations built on it keep working. */
  adminToken: string;
  /** People's bearer tokens; without it only API tokens (and the admin token) are accepted. */
  oidc?: OidcSettings;
  maxBodyBytes: number;
  /** The governance policy (who is who, privileged grants); the same one the grammars were built with. */
  policy?: Policy;
  log: Logger;
  /** Each ticket source's own settings (ServiceNow: SERVICENOW_STATE_PHASES), by source name. */
  sourceSettings?: Readonly<Record<string, SourceSettings>>;
  /**
   * Clients of the ticket sources, as the worker gets them: the edge tells a requester on the ticket why a delivery
   * was refused, and /readyz proves at start-up that the integration user has the rights write-backs need; sources
   * that ask their system at the edge (Jira: statuses, approvals) use them to parse deliveries.
   */
  sourceClients?: SourceClients;
  /** How long a passed source check holds before /readyz asks again; a failed one is asked again after a minute. */
  sourceCheckTtlMs?: number;
  /** Where this process counts webhook deliveries (served on the metrics listener, not here). */
  metrics?: GatewayMetrics;
  /** Traces each webhook delivery into its workflow (OTEL_EXPORTER_OTLP_ENDPOINT). */
  tracer?: Tracer;
  /** How long no poll by any worker may go unseen before /readyz says so (TEMPORAL_WORKER_POLL_SILENCE). */
  workerPollSilenceMs?: number;
  /** The dashboard's build folder and the settings it reads; without it /dashboard/ is not served. */
  dashboard?: { dir: string; config: DashboardConfig };
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  const inventory = new InventoryStore(deps.ds);
  const drift = new DriftStore(deps.ds);
  const certifications = new CertificationStore(deps.ds);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  const writeBackFor = sourceWriteBacks(deps.sourceClients);
  const sourceChecks = accessChecks(deps.sourceClients, writeBackFor, deps.sourceCheckTtlMs ?? 600_000, deps.log);

  app.get('/readyz', async (_req, res) => {
    const checks = await Promise.all([
      deps.ds.query('SELECT 1').then(() => 'ok', (e: Error) => `down: ${e.message}`),
      deps.workflows.ping().then(() => 'ok', (e: Error) => `down: ${e.message}`),
    ]);
    const [database, temporal] = checks;
    // Each ticket source configured here: the integration user's rights (ServiceNow), what the source must hold
    // (Jira: its statuses exist), by name.
    const sources: Record<string, string> = await sourceChecks();
    for (const name of ticketSourceNames()) {
      const check = await ticketSource(name)
        ?.ready?.(deps.sourceClients ?? {})
        .catch((e: Error) => ({ ok: false as const, reason: e.message }));
      if (check && (check.ok ? sources[name] === undefined : true)) sources[name] = check.ok ? 'ok' : `down: ${check.reason}`;
    }
    const ready = checks.every((c) => c === 'ok') && Object.values(sources).every((c) => c === 'ok');
    // Whether workers poll the task queue, said but not counted: a delivery accepted while none does waits in Temporal
    // and is worked once one is back (each worker ends itself when its own polls go unseen, for a restart).
    const workers = temporal === 'ok' ? await deps.workflows.lastPolls().then((last) => pollReport(last, deps.workerPollSilenceMs ?? DEFAULT_POLL_SILENCE_MS), () => undefined) : undefined;
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not-ready', database, temporal, ...(workers ? { workers } : {}), ...(Object.keys(sources).length > 0 ? { sources } : {}) });
  });

  const webhookSources = () => ['deploy', 'secret-scanning', ...ticketSourceNames()];
  if (deps.metrics) app.use('/webhooks', countDeliveries(deps.metrics, webhookSources));
  if (deps.tracer) app.use('/webhooks', traceDeliveries(deps.tracer, webhookSources));

  // Pipelines' run events: signed like ticket deliveries, with their own secret; mounted before /webhooks/:source.
  app.post('/webhooks/deploy', express.raw({ type: () => true, limit: deps.maxBodyBytes }), async (req: Request, res: Response) => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const result = await receiveDeployEvent({ ...deps, secret: deps.deployWebhookSecret }, raw, req.headers);
    res.status(result.status).json(result.body);
  });

  // Secret scanners' leak reports: signed GitHub-style over the raw bytes, with their own secret.
  app.post('/webhooks/secret-scanning', express.raw({ type: () => true, limit: deps.maxBodyBytes }), async (req: Request, res: Response) => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const result = await receiveLeakReport({ workflows: deps.workflows, secret: deps.leaks?.webhookSecret, github: deps.leaks?.github, log: deps.log }, raw, req.headers);
    res.status(result.status).json(result.body);
  });

  // Public by nature: the API's description, built from the mounted routes once every route is mounted.
  let openApi: ReturnType<typeof openApiDocument> | undefined;
  app.get('/openapi.json', (_req, res) => {
    openApi ??= openApiDocument(app);
    res.json(openApi);
  });

  // Public by nature: the key auditors check exported evidence bundles against.
  app.get('/api/evidence/public-key', (_req, res) => {
    res.json(evidencePublicKey(deps));
  });

  const secrets: Readonly<Record<string, string>> = { servicenow: deps.webhookSecret, ...deps.sourceSecrets };
  // Raw bytes: the signature covers exactly what was sent, so the body is parsed only after it is verified.
  app.post(
    '/webhooks/:source',
    (req, res, next) => {
      res.locals.source = sourceNamed(String(req.params.source));
      next();
    },
    express.raw({ type: () => true, limit: deps.maxBodyBytes }),
    async (req: Request, res: Response) => {
      const source = res.locals.source as TicketSource;
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const result = await receiveDelivery({ ...deps, secret: secrets[source.name], writeBackFor }, source, raw, req.headers);
      res.status(202).json(result);
    },
  );

  // Every API route names the roles it admits; the README's role table lists them, test/auth-routes.test.ts checks them.
  const tokens = new ApiTokenStore(deps.ds);
  const auth = new Authenticator({ tokens, adminToken: deps.adminToken, jwt: deps.oidc ? new JwtVerifier(deps.oidc) : undefined });
  const requireRoles = createRequireRoles(auth, deps.log);

  app.get('/api/changes', requireRoles('change-manager', 'auditor', 'operator', 'security-reviewer'), async (req, res) => {
    res.json(await listChanges(deps, req.query));
  });
  app.get('/api/changes/ageing', requireRoles('change-manager', 'auditor', 'operator', 'security-reviewer'), async (req, res) => {
    res.json(await changeAgeing(deps, req.query));
  });
  app.get('/api/changes/:source/:key/closure-check', requireRoles('change-manager', 'auditor', 'operator', 'integration', 'security-reviewer'), async (req, res) => {
    res.json(await closureCheck(deps, sourceNamed(String(req.params.source)), String(req.params.key)));
  });
  const policy = deps.policy ?? new Policy();
  app.post('/api/changes/:source/:key/steps/:stepId/decision', requireRoles('change-manager'), express.json({ limit: '16kb' }), async (req, res) => {
    const source = sourceNamed(String(req.params.source));
    res.json(await decideStep({ workflows: deps.workflows, policy }, source, String(req.params.key), String(req.params.stepId), req.body, principalOf(res)));
  });
  const exceptionLedger = new ExceptionStore(deps.ds);
  app.get('/api/exceptions', requireRoles('security-reviewer', 'auditor', 'change-manager', 'operator'), async (req, res) => {
    res.json(await listExceptions({ exceptions: exceptionLedger, workflows: deps.workflows }, req.query));
  });
  app.post('/api/exceptions/:id/decision', requireRoles('security-reviewer'), express.json({ limit: '16kb' }), async (req, res) => {
    res.json(await decideException({ exceptions: exceptionLedger, workflows: deps.workflows, policy }, String(req.params.id), req.body, principalOf(res)));
  });
  app.get('/api/changes/:source/:key/evidence', requireRoles('auditor', 'change-manager', 'operator', 'security-reviewer'), async (req, res) => {
    res.json(await evidenceBundle(deps, sourceNamed(String(req.params.source)), String(req.params.key)));
  });
  app.get('/api/changes/:source/:key/evidence/export', requireRoles('auditor', 'operator'), async (req, res) => {
    const bundle = await evidenceExport(deps, sourceNamed(String(req.params.source)), String(req.params.key));
    res.attachment(`${bundle.source}-${bundle.ticket}-evidence.json`).json(bundle);
  });

  app.post('/api/inventory/scan', requireRoles('operator'), express.json({ limit: '16kb' }), async (req, res) => {
    res.json(await scanInventory(deps, req.body as unknown, principalOf(res)));
  });
  app.get('/api/inventory/scans/:scanId', requireRoles('operator', 'auditor', 'security-reviewer'), async (req, res) => {
    res.json(await scanRecord(deps, String(req.params.scanId)));
  });

  app.get('/api/drift', requireRoles('auditor', 'change-manager', 'operator', 'security-reviewer'), async (req, res) => {
    res.json(await listDrift({ drift }, req.query));
  });
  app.get('/api/inventory', requireRoles('auditor', 'change-manager', 'operator', 'security-reviewer'), async (req, res) => {
    res.json(await listInventory({ inventory }, req.query));
  });
  app.patch('/api/inventory/:id', requireRoles('operator'), express.json({ limit: '4kb' }), async (req, res) => {
    const set = await setOwnership({ inventory, evidence: deps.evidence }, String(req.params.id), req.body as unknown, principalOf(res));
    res.json({ ...set, ...(await certifyOwnerChange({ workflows: deps.workflows, policy, log: deps.log }, set.identity, set.evidence, req.body as unknown)) });
  });

  // The dashboard's reports: read-only figures computed from evidence rows and the drift table.
  const reportReaders = ['auditor', 'operator', 'security-reviewer', 'change-manager'] as const;
  app.get('/api/reports/targets', requireRoles(...reportReaders), async (req, res) => {
    res.json(await reportTargets({ evidence: deps.evidence, drift }, req.query));
  });
  app.get('/api/reports/deploy-credentials', requireRoles(...reportReaders), async (req, res) => {
    res.json(await reportDeployCredentials(deps, req.query));
  });
  app.get('/api/reports/latency', requireRoles(...reportReaders), async (req, res) => {
    res.json(await reportLatency(deps, req.query));
  });
  app.get('/api/reports/kinds', requireRoles(...reportReaders), async (req, res) => {
    res.json(await reportKinds(deps, req.query));
  });

  app.get('/api/certifications', requireRoles('auditor', 'security-reviewer', 'change-manager', 'operator'), async (req, res) => {
    res.json(await listCertifications({ certifications }, req.query));
  });
  // Admits the reviewer roles; the item's own reviewer rule (role, group, the owner's manager) is the workflow's to check.
  app.post('/api/certifications/:id/decision', requireRoles('security-reviewer', 'change-manager'), express.json({ limit: '64kb' }), async (req, res) => {
    res.json(await decideCertification({ workflows: deps.workflows, certifications, policy }, String(req.params.id), req.body, principalOf(res)));
  });

  app.get('/api/tokens', requireRoles('operator', 'auditor'), async (_req, res) => {
    res.json(await listTokens({ tokens }));
  });
  app.post('/api/tokens', requireRoles('operator'), express.json({ limit: '4kb' }), async (req, res) => {
    res.status(201).json(await createToken({ tokens }, req.body as unknown, principalOf(res)));
  });
  app.delete('/api/tokens/:name', requireRoles('operator'), async (req, res) => {
    res.json(await revokeToken({ tokens }, String(req.params.name), principalOf(res)));
  });

  if (deps.dashboard) mountDashboard(app, deps.dashboard);

  app.use((req, _res, next) => next(new AppError(404, 'NOT_FOUND', `no route for ${req.method} ${req.path}`)));
  app.use(errorMiddleware(deps.log));
  return app;
}

/** The write-back adapters of the sources the API was given clients for; undefined for any other source. */
function sourceWriteBacks(clients: SourceClients | undefined): (source: string) => TicketWriteBack | undefined {
  if (!clients) return () => undefined;
  const lookup = writeBacks(clients);
  return (source) => (clients[source] === undefined ? undefined : lookup(source));
}

/**
 * Each source's access check (ServiceNow: reading sys_journal_field), run at start-up and then again once its answer
 * has aged: a passed check holds for `ttlMs`, a failed one for a minute, so that /readyz, polled every few seconds,
 * does not spend the integration user's hourly rate limit.
 */
function accessChecks(clients: SourceClients | undefined, writeBackFor: (source: string) => TicketWriteBack | undefined, ttlMs: number, log: Logger) {
  const names = Object.keys(clients ?? {}).filter((name) => ticketSource(name) && writeBackFor(name)?.checkAccess);
  const answers = new Map<string, { at: number; answer: Promise<string> }>();
  const run = (name: string) => {
    const answer = (writeBackFor(name)?.checkAccess?.() ?? Promise.resolve()).then(
      () => 'ok',
      (err: unknown) => {
        const reason = `not ready: ${(err as Error).message}`;
        log.warn('ticket source access check failed', { source: name, reason });
        return reason;
      },
    );
    answers.set(name, { at: Date.now(), answer });
    return answer;
  };
  for (const name of names) void run(name);
  return async (): Promise<Record<string, string>> => {
    const out: Record<string, string> = {};
    for (const name of names) {
      const held = answers.get(name);
      const age = held ? Date.now() - held.at : Infinity;
      const last = held ? await held.answer : undefined;
      out[name] = last === undefined || age > (last === 'ok' ? ttlMs : Math.min(ttlMs, 60_000)) ? await run(name) : last;
    }
    return out;
  };
}

function sourceNamed(name: string): TicketSource {
  const source = ticketSource(name);
  if (!source) throw new AppError(404, 'NOT_FOUND', `no ticket source named '${name.slice(0, 40)}' (registered: ${ticketSourceNames().join(', ')})`);
  return source;
}

/** The one place errors become responses. Only AppErrors speak; anything else is a logged, detail-free 500. */
function errorMiddleware(log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const bodyError = err as { type?: string; status?: number };
    const engine = engineFailure(err);
    let appErr: AppError;
    if (err instanceof AppError) appErr = err;
    else if (bodyError?.type === 'entity.too.large') appErr = new AppError(413, 'PAYLOAD_TOO_LARGE', 'request body exceeds the size limit');
    else if (bodyError?.type === 'encoding.unsupported' || bodyError?.type === 'charset.unsupported') {
      appErr = new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'unsupported content encoding or charset');
    } else if (typeof bodyError?.status === 'number' && bodyError.status >= 400 && bodyError.status < 500) {
      appErr = new AppError(400, 'VALIDATION_FAILED', 'malformed request');
    } else if (engine?.retryable) {
      // Temporal, or the worker a query, an update or a result waits for, did not answer: nothing the caller sent.
      appErr = unavailable('the workflow engine did not answer; retry later', new Error(`${engine.reason}: ${(err as Error).message}`));
    } else if (databaseUnavailable(err)) {
      appErr = unavailable('the database did not answer; retry later', err);
    } else {
      // A Temporal error no retry cures (an invalid argument, a permission) is the gateway's fault: a 500, logged with its code.
      log.error('unhandled error', { method: req.method, path: req.path, error: err instanceof Error ? err.message : String(err), ...(engine ? { engine: engine.reason } : {}) });
      appErr = new AppError(500, 'INTERNAL', 'internal error');
    }
    if (appErr.status >= 500 && appErr.code !== 'INTERNAL') {
      const cause = (appErr.cause as Error | undefined)?.message;
      log.warn('request failed', { path: req.path, code: appErr.code, cause });
    }
    res.set(appErr.headers).status(appErr.status).json({ error: { code: appErr.code, message: appErr.message, issues: appErr.issues } });
  };
}
