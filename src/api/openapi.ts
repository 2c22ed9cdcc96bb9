import { extendZodWithOpenApi, OpenApiGeneratorV31, OpenAPIRegistry, type ResponseConfig, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import type express from 'express';
import { z } from 'zod';
import { TOKEN_NAME } from '../auth/api-tokens';
import { ROLES, type Role } from '../auth/principal';
import { CERTIFICATION_ID } from '../certification/certification';
import { EXCEPTION_ID } from '../change/exception';
import { HUB_SIGNATURE_HEADER, WEBHOOK_ID_HEADER, WEBHOOK_RETRY_HEADER } from '../itsm/jira/jira-signature';
import { ticketSource, ticketSourceNames } from '../itsm/registry';
import { EVENT_ID_HEADER, MAX_TIMESTAMP_SKEW_SECONDS, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../itsm/servicenow/webhook-signature';
import { genericReportSchema, GITHUB_EVENT, githubAlertEventSchema, HUB_SIGNATURE_256 } from '../leaks/leak-report';
import { AGE_BRACKETS, changeAgeingQuery, changeListQuery, GATE_STATES } from './change-list';
import { dashboardConfigSchema } from './dashboard';
import { certificationDecisionBody, certificationListQuery } from './certifications';
import { STEP_ID, stepDecisionBody } from './decisions';
import { deployEventSchema, EVENT_ID } from './deploy-webhook';
import { driftListQuery } from './drift';
import { exceptionDecisionBody, exceptionListQuery } from './exceptions';
import { INVENTORY_ID, inventoryListQuery, ownershipBody, SCAN_ID, scanRequest } from './inventory';
import { createTokenRequest } from './tokens';
import { deployCredentialsQuery } from './deploy-credentials';
import { kindSplitQuery } from './kind-split';
import { latencyQuery } from './step-latency';
import { targetHealthQuery } from './target-health';

/**
 * GET /openapi.json: the API described from the zod schemas its handlers validate with. Each mounted route has one
 * entry below (keyed `METHOD /express/path`); the roles a route admits are read from its role gate on the mounted
 * router, so the document cannot say other than what the gate does. test/openapi.e2e.test.ts fails on a mounted route
 * without an entry, and checks real responses against the schemas here.
 */
extendZodWithOpenApi(z);

const ERROR_CODES = [
  'VALIDATION_FAILED', 'MALFORMED_JSON', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE', 'UNAUTHORIZED', 'FORBIDDEN', 'CONFLICT', 'NOT_FOUND',
  'TICKET_FINALIZED', 'UNAVAILABLE', 'DEPLOY_FAILED', 'UPSTREAM_FAILED', 'INTERNAL',
] as const;

/** The one error shape every non-2xx answer has (src/errors.ts, the error middleware in app.ts). */
const errorEnvelope = z
  .object({
    error: z
      .object({
        code: z.enum(ERROR_CODES),
        message: z.string(),
        issues: z.array(z.object({ path: z.string(), message: z.string() }).strict()).openapi({ description: 'What was wrong and where (`body.field`, `query.limit`, `path.id`, `header x-…`).' }),
      })
      .strict(),
  })
  .strict()
  .openapi('Error');

const role = z.enum(ROLES);
const actor = z.object({ kind: z.enum(['person', 'token', 'policy']), id: z.string(), name: z.string() }).strict().openapi('Actor');
const timestamp = z.string().openapi({ description: 'ISO 8601 time' });
/** Objects whose full shape belongs to another module (workflow state, evidence rows); their named fields are stable. */
const open = <T extends z.ZodRawShape>(shape: T) => z.object(shape).passthrough();

const page = <T extends z.ZodTypeAny>(item: T) =>
  z.object({ items: z.array(item), nextCursor: z.string().nullable().openapi({ description: 'Pass as `cursor` for the next page; null on the last' }), limit: z.number().int() }).strict();

const evidenceRow = open({ seq: z.number().int(), hash: z.string(), stepId: z.string(), outcome: z.string(), verified: z.boolean() }).openapi('EvidenceRow');
const chainCheck = open({ valid: z.boolean() }).openapi('ChainCheck');
const tokenShape = { name: z.string(), roles: z.array(role), createdAt: timestamp, createdBy: z.string(), revokedAt: timestamp.nullable(), revokedBy: z.string().nullable() };
const tokenInfo = z.object(tokenShape).strict().openapi('ApiToken');
const readiness = z
  .object({
    status: z.enum(['ready', 'not-ready']),
    database: z.string(),
    temporal: z.string(),
    workers: z
      .object({ workflow: z.string(), activity: z.string() })
      .strict()
      .optional()
      .describe('Whether Temporal has seen a worker poll the task queue lately (`ok`, or how long not): said, not counted in the status'),
    sources: z.record(z.string()).optional(),
  })
  .strict()
  .openapi('Readiness');
const inventoryItem = open({
  id: z.string(), system: z.string(), name: z.string(), host: z.string(), type: z.string(), owner: z.string().nullable(), workload: z.string().nullable(),
  grants: z.array(z.unknown()), status: z.string(), changedAt: timestamp, firstSeenAt: timestamp,
}).openapi('InventoryItem');
const driftItem = open({
  id: z.string(), system: z.string(), name: z.string(), host: z.string(), type: z.string(), grant: z.string().nullable(), detail: z.string(),
  status: z.string(), action: z.string(), change: z.string().nullable(), firstSeenAt: timestamp, lastSeenAt: timestamp, resolvedAt: timestamp.nullable(),
}).openapi('DriftFinding');
const certificationItem = open({
  id: z.string(), system: z.string(), name: z.string(), grants: z.array(z.string()), trigger: z.string(), reviewer: open({ kind: z.string() }),
  dueAt: timestamp, status: z.string(), decidedBy: actor.nullable(), openedAt: timestamp,
}).openapi('CertificationItem');
const queueItem = open({
  id: z.string(), source: z.string(), ticket: z.string(), stepId: z.string(), system: z.string(), grants: z.array(z.string()), deadline: timestamp,
  status: z.string(), overdue: z.boolean(), timeLeftMs: z.number().nullable(), current: open({}),
}).openapi('ExceptionQueueItem');
const closure = z
  .object({
    ticket: z.string(), allowed: z.boolean(), reasons: z.array(z.string()), ticketState: z.string(), phase: z.string().optional(),
    steps: z.array(open({ stepId: z.string(), kind: z.string(), system: z.string(), status: z.string() })),
    evidence: z.object({ rows: z.number().int(), chainValid: z.boolean() }).strict(),
  })
  .strict()
  .openapi('ClosureCheck');
const changeItem = z
  .object({
    source: z.string(), ticket: z.string(), state: z.enum(GATE_STATES), ticketState: z.string(), phase: z.string().nullable(), reasons: z.array(z.string()),
    systems: z.array(z.string()), kinds: z.array(z.string()), steps: z.number().int(),
    receivedAt: timestamp.openapi({ description: 'When the gateway first received the ticket (its first accepted delivery)' }), updatedAt: timestamp,
  })
  .strict()
  .openapi('ChangeSummary');
const reportWindow = { since: timestamp, until: timestamp };
const ratio = z.number().nullable().openapi({ description: 'From 0 to 1; null when there is nothing to divide' });
const targetHealth = z
  .object({
    system: z.string(), steps: z.number().int(), verified: z.number().int(), failed: z.number().int(), failureRate: ratio,
    retries: z.number().int().openapi({ description: 'Activity attempts after the first (transient faults retried)' }), reReads: z.number().int(),
    drift: z.object({ open: z.number().int(), byType: z.record(z.number().int()) }).strict(),
    leaks: z.object({ reports: z.number().int(), byOutcome: z.record(z.number().int()) }).strict(),
    recentFailures: z.array(z.object({ source: z.string(), ticket: z.string(), stepId: z.string(), kind: z.string(), at: timestamp, detail: z.string() }).strict()),
  })
  .strict()
  .openapi('TargetHealth');
const kindShare = z
  .object({ kind: z.string(), changes: z.number().int(), steps: z.number().int(), verified: z.number().int(), failed: z.number().int(), successRate: ratio, share: ratio })
  .strict()
  .openapi('KindShare');
const latencyPoint = z
  .object({ at: timestamp, verified: z.number().int(), failed: z.number().int(), p50Ms: z.number().nullable(), p95Ms: z.number().nullable() })
  .strict()
  .openapi('LatencyPoint');
const liveCredential = z
  .object({
    source: z.string(), ticket: z.string(), runId: z.string(), system: z.string(), identity: z.string(), deliveredTo: z.string().nullable(), mintedAt: timestamp,
    revocationFailed: z.boolean(),
  })
  .strict()
  .openapi('LiveDeployCredential');
const ageing = z
  .object({
    basis: z.literal('first-delivery').openapi({ description: "Ages count whole days since the gateway first received the ticket" }),
    at: timestamp,
    brackets: z.array(
      z
        .object({
          bracket: z.enum(AGE_BRACKETS.map((b) => b.bracket) as [string, ...string[]]), label: z.string(), minDays: z.number().int(), maxDays: z.number().int().nullable(),
          count: z.number().int().openapi({ description: 'Every open change of the bracket' }),
          tickets: z.array(z.object({ source: z.string(), ticket: z.string(), state: z.enum(GATE_STATES), kinds: z.array(z.string()), receivedAt: timestamp, ageDays: z.number().int() }).strict()),
        })
        .strict(),
    ),
    limit: z.number().int(),
  })
  .strict()
  .openapi('ChangeAgeing');
const evidenceBundle = open({ ticket: z.string(), chain: chainCheck, rows: z.array(evidenceRow) }).openapi('EvidenceBundle');
const signedBundle = open({ source: z.string(), ticket: z.string() }).openapi({ description: 'A signed, self-contained bundle; `changegate verify-evidence` checks it offline against GET /api/evidence/public-key.' });
const decisionResult = (id: string) => z.object({ [id]: z.string(), decision: z.string(), status: z.string(), evidenceHash: z.string() }).strict();
const delivery = z.object({ workflowId: z.string(), duplicate: z.boolean(), ignored: z.string().optional() }).strict().openapi('DeliveryResult');

// Path parameters, from the same patterns the handlers check.
const params = {
  source: z.enum(ticketSourceNames() as [string, ...string[]]).openapi({ description: 'A registered ticket source; another name is a 404' }),
  // Each registered source's own key pattern: the handler checks the one of the source named.
  key: z
    .string()
    .regex(new RegExp(ticketSourceNames().map((name) => `(?:${ticketSource(name)?.keyPattern.source})`).join('|')))
    .openapi({ description: "The ticket's key in its source (ServiceNow: CHG0030001; Jira: OPS-123); a key not of the source's shape is a 400" }),
  stepId: z.string().regex(STEP_ID).openapi({ description: 'A step id closure-check reports' }),
  exceptionId: z.string().regex(EXCEPTION_ID),
  inventoryId: z.string().regex(INVENTORY_ID),
  scanId: z.string().regex(SCAN_ID),
  certificationId: z.string().regex(CERTIFICATION_ID),
  tokenName: z.string().regex(TOKEN_NAME),
};
const change = z.object({ source: params.source, key: params.key });

interface Entry {
  summary: string;
  description?: string;
  tags: string[];
  request?: RouteConfig['request'];
  /** The success answers; error answers are added from `errors` and what the route is (gated, has a body). */
  ok: Record<number, ResponseConfig>;
  /** Error statuses this route answers besides the common ones. */
  errors?: number[];
  /** Extension fields (webhook signatures). */
  extra?: Record<string, unknown>;
}

const json = (schema: z.ZodTypeAny, description: string): ResponseConfig => ({ description, content: { 'application/json': { schema } } });
const body = (schema: z.ZodTypeAny, description?: string) => ({ content: { 'application/json': { schema } }, required: false, ...(description ? { description } : {}) });

const CHANGEGATE_SIGNATURE = {
  headers: [
    { name: SIGNATURE_HEADER, description: `Base64 HMAC-SHA256, keyed with the UTF-8 bytes of the shared secret, over \`<${TIMESTAMP_HEADER}>.<raw body bytes>\`` },
    { name: TIMESTAMP_HEADER, description: `Unix seconds when sent; more than ${MAX_TIMESTAMP_SKEW_SECONDS} s from the gateway's clock is refused as a replay` },
  ],
  signs: '`<timestamp>.` followed by the raw request body, byte for byte, before any parsing',
};

/** How each ticket source signs its deliveries to POST /webhooks/{source}. */
const SOURCE_SIGNATURES: Record<string, { secret: string; headers: Array<{ name: string; description: string }>; signs: string }> = {
  servicenow: { secret: 'SERVICENOW_WEBHOOK_SECRET', ...CHANGEGATE_SIGNATURE, headers: [...CHANGEGATE_SIGNATURE.headers, { name: EVENT_ID_HEADER, description: 'The delivery id; a repeat is acknowledged as a duplicate' }] },
  jira: {
    secret: 'JIRA_WEBHOOK_SECRET',
    headers: [
      { name: HUB_SIGNATURE_HEADER, description: '`sha256=<hex HMAC-SHA256 of the raw body>`, keyed with the UTF-8 bytes of the shared secret (Jira admin webhooks)' },
      { name: WEBHOOK_ID_HEADER, description: "Jira's delivery identifier (1-128 of letters, digits, . _ : -); stable across retries" },
      { name: WEBHOOK_RETRY_HEADER, description: "Jira's retry count (informational)" },
    ],
    signs: 'the raw request body, byte for byte (no timestamp: replays are stopped by the identifier and ticket versions)',
  },
};

const header = (name: string, description: string, required: boolean) => ({ name, in: 'header' as const, required, description, schema: { type: 'string' as const } });

function entries(): Record<string, Entry> {
  const sources = ticketSourceNames();
  return {
    'GET /healthz': { summary: 'Liveness', tags: ['probes'], ok: { 200: json(z.object({ status: z.literal('ok') }).strict(), 'The process answers') } },
    'GET /readyz': {
      summary: 'Readiness: database, Temporal and each configured ticket source',
      description: 'Not an error when not ready: the 503 carries the same report as the 200, each part saying why.',
      tags: ['probes'],
      ok: { 200: json(readiness, 'Ready'), 503: json(readiness, 'Not ready: each part says why') },
    },
    'GET /openapi.json': { summary: 'This document (OpenAPI 3.1)', tags: ['probes'], ok: { 200: json(z.object({ openapi: z.string() }).passthrough(), 'The OpenAPI document') } },
    'GET /dashboard/config.json': {
      summary: "The dashboard's settings: where people log in (OIDC, authorization code with PKCE) and where it links to",
      tags: ['dashboard'],
      ok: { 200: json(dashboardConfigSchema.openapi('DashboardConfig'), 'The settings') },
    },
    'GET /api/evidence/public-key': {
      summary: 'The Ed25519 key evidence exports are signed with',
      tags: ['evidence'],
      errors: [503],
      ok: { 200: json(z.object({ keyId: z.string(), alg: z.literal('Ed25519'), jwk: z.record(z.unknown()), pem: z.string() }).strict().openapi('EvidencePublicKey'), 'The public key and its id') },
    },
    'POST /webhooks/{source}': {
      summary: 'A ticket source delivers a change (signed)',
      description: [
        `Sources: ${sources.join(', ')}. No bearer token: each delivery is signed with the source's shared secret, checked over the raw bytes before anything parses them.`,
        ...sources.map((s) => {
          const sig = SOURCE_SIGNATURES[s];
          return sig ? `**${s}** (${sig.secret}): signs ${sig.signs}; headers ${sig.headers.map((h) => `\`${h.name}\``).join(', ')}.` : `**${s}**: see its source module.`;
        }),
      ].join('\n\n'),
      tags: ['webhooks'],
      request: {
        params: z.object({ source: params.source }),
        body: body(z.record(z.unknown()), "The source's own record (ServiceNow: the change_request record; Jira: the issue event)"),
      },
      extra: {
        parameters: Object.values(SOURCE_SIGNATURES).flatMap((s) => s.headers.map((h) => header(h.name, h.description, false))),
        'x-changegate-signatures': SOURCE_SIGNATURES,
      },
      errors: [400, 404, 409, 413, 415, 503],
      ok: { 202: json(delivery, 'Accepted (or acknowledged: `duplicate`, `ignored` say so)') },
    },
    'POST /webhooks/deploy': {
      summary: "A pipeline's run event (signed)",
      description: `Signed like ServiceNow deliveries, with DEPLOY_WEBHOOK_SECRET: ${CHANGEGATE_SIGNATURE.signs}. \`${EVENT_ID_HEADER}\` is required and de-duplicates.`,
      tags: ['webhooks'],
      request: { body: body(deployEventSchema) },
      extra: {
        parameters: [...CHANGEGATE_SIGNATURE.headers.map((h) => header(h.name, h.description, true)), { ...header(EVENT_ID_HEADER, 'The event id (1-128 of letters, digits, . _ : -); a repeat is acknowledged as a duplicate', true), schema: { type: 'string', pattern: EVENT_ID.source } }],
        'x-changegate-signatures': { deploy: { secret: 'DEPLOY_WEBHOOK_SECRET', ...CHANGEGATE_SIGNATURE } },
      },
      errors: [400, 404, 409, 413, 415, 502, 503],
      ok: {
        200: json(open({ runId: z.string(), event: z.string(), duplicate: z.boolean() }), 'Taken (a run ended, or a repeat acknowledged)'),
        201: json(open({ runId: z.string(), event: z.string(), result: z.string(), credentials: z.array(z.unknown()), duplicate: z.literal(false) }), 'A run started: its credentials were minted'),
      },
    },
    'POST /webhooks/secret-scanning': {
      summary: "A secret scanner's leak report (signed GitHub-style)",
      description: `\`${HUB_SIGNATURE_256}\`: \`sha256=<hex HMAC-SHA256 of the raw body>\` keyed with SECRET_SCANNING_WEBHOOK_SECRET. With \`${GITHUB_EVENT}\` the body is GitHub's event; without it, the generic report. The literal becomes a fingerprint at the edge and goes no further.`,
      tags: ['webhooks'],
      request: { body: body(z.union([githubAlertEventSchema, genericReportSchema])) },
      extra: {
        parameters: [header(HUB_SIGNATURE_256, 'sha256=<hex HMAC-SHA256 of the raw body>', true), header(GITHUB_EVENT, "GitHub's event name (secret_scanning_alert, ping); absent for the generic form", false)],
        'x-changegate-signatures': { 'secret-scanning': { secret: 'SECRET_SCANNING_WEBHOOK_SECRET', headers: [{ name: HUB_SIGNATURE_256 }], signs: 'the raw request body, byte for byte' } },
      },
      errors: [400, 413, 415, 502, 503],
      ok: {
        200: json(z.record(z.unknown()), 'A ping, an event that reports nothing, or a repeat (`duplicate: true`)'),
        202: json(z.object({ fingerprint: z.string(), workflowId: z.string(), duplicate: z.literal(false) }).strict(), 'Handling started'),
      },
    },
    'GET /api/changes': {
      summary: 'Changes by gate state: the newest published closure view of each, newest first',
      description: '`limit` (default 100) counts the newest changes of the source, system and kind asked for; `state` then keeps those in that state.',
      tags: ['changes'],
      request: { query: changeListQuery },
      errors: [400],
      ok: { 200: json(z.object({ items: z.array(changeItem), limit: z.number().int() }).strict(), 'Newest first') },
    },
    'GET /api/changes/ageing': {
      summary: 'Open changes by age bracket (< 1 d, 1–5 d, 6–30 d, 31–90 d, > 90 d)',
      description: 'Open: not closed or cancelled. Age: whole days since the gateway first received the ticket. Each bracket counts all its changes and lists up to `limit` (default 100), oldest first.',
      tags: ['changes'],
      request: { query: changeAgeingQuery },
      errors: [400],
      ok: { 200: json(ageing, 'The five brackets, youngest first') },
    },
    'GET /api/changes/{source}/{key}/closure-check': {
      summary: 'May the change close? Step states cross-checked against the evidence chain',
      tags: ['changes'],
      request: { params: change },
      errors: [400, 404],
      ok: { 200: json(closure, 'The verdict and its reasons') },
    },
    'POST /api/changes/{source}/{key}/steps/{stepId}/decision': {
      summary: "Approve or reject a step's privileged grants",
      tags: ['changes'],
      request: { params: change.extend({ stepId: params.stepId }), body: body(stepDecisionBody) },
      errors: [400, 404, 409, 413, 415],
      ok: { 200: json(decisionResult('stepId'), 'Recorded as evidence naming the caller') },
    },
    'GET /api/exceptions': {
      summary: "The security reviewers' queue of emergency exceptions",
      tags: ['exceptions'],
      request: { query: exceptionListQuery },
      errors: [400],
      ok: { 200: json(page(queueItem), 'Soonest deadline first') },
    },
    'POST /api/exceptions/{id}/decision': {
      summary: 'Accept or revoke an emergency exception',
      tags: ['exceptions'],
      request: { params: z.object({ id: params.exceptionId }), body: body(exceptionDecisionBody) },
      errors: [400, 404, 409, 413, 415],
      ok: { 200: json(decisionResult('exceptionId'), 'Recorded as evidence naming the caller') },
    },
    'GET /api/changes/{source}/{key}/evidence': {
      summary: "The change's evidence rows and chain check",
      tags: ['evidence'],
      request: { params: change },
      errors: [400, 404],
      ok: { 200: json(evidenceBundle, 'The rows, in order') },
    },
    'GET /api/changes/{source}/{key}/evidence/export': {
      summary: "The change's evidence as a signed bundle (a download)",
      tags: ['evidence'],
      request: { params: change },
      errors: [400, 404],
      ok: { 200: json(signedBundle, 'Content-Disposition: attachment') },
    },
    'POST /api/inventory/scan': {
      summary: 'Discover the named systems (default: all) and report orphans',
      tags: ['inventory'],
      request: { body: body(scanRequest) },
      errors: [400, 413, 415],
      ok: { 200: json(open({ scanId: z.string(), scannedAt: timestamp, systems: z.array(open({ system: z.string(), orphans: z.number().int() })), orphans: z.number().int() }), 'What each system holds') },
    },
    'GET /api/inventory/scans/{scanId}': {
      summary: 'What a past scan found, from its evidence',
      tags: ['inventory'],
      request: { params: z.object({ scanId: params.scanId }) },
      errors: [400, 404],
      ok: { 200: json(z.object({ scanId: z.string(), chain: chainCheck, rows: z.array(evidenceRow) }).strict(), 'The scan record') },
    },
    'GET /api/drift': {
      summary: 'Drift findings: what discovery found different from the approved state',
      tags: ['inventory'],
      request: { query: driftListQuery },
      errors: [400],
      ok: { 200: json(page(driftItem), 'By finding id') },
    },
    'GET /api/inventory': {
      summary: 'Identities the gateway knows',
      tags: ['inventory'],
      request: { query: inventoryListQuery },
      errors: [400],
      ok: { 200: json(page(inventoryItem), 'By id') },
    },
    'PATCH /api/inventory/{id}': {
      summary: "Name an orphan's owner and workload",
      tags: ['inventory'],
      request: { params: z.object({ id: params.inventoryId }), body: body(ownershipBody.openapi({ description: 'Set owner, workload or both', minProperties: 1 })) },
      errors: [400, 404, 409, 413, 415],
      ok: {
        200: json(
          open({ identity: inventoryItem.nullable(), evidence: z.object({ ticketKey: z.string(), seq: z.number().int(), hash: z.string() }).strict(), certification: z.union([z.string(), z.object({ error: z.string() })]).optional() }),
          'Set, with the evidence row that records it',
        ),
      },
    },
    'GET /api/reports/targets': {
      summary: 'Per target system: verification failures, retries, open drift findings and leaked-secret reports',
      description: 'Steps that ended in the window, from their evidence rows; drift as the drift table holds it now. Leak reports that matched no credential are under system `*`.',
      tags: ['reports'],
      request: { query: targetHealthQuery },
      errors: [400],
      ok: { 200: json(z.object({ ...reportWindow, unmatchedLeaks: z.string(), systems: z.array(targetHealth) }).strict(), 'Most failures first') },
    },
    'GET /api/reports/deploy-credentials': {
      summary: "Pipeline runs' credentials minted and revoked, and each one still live",
      tags: ['reports'],
      request: { query: deployCredentialsQuery },
      errors: [400],
      ok: {
        200: json(
          z.object({
            minted: z.number().int(), revoked: z.number().int(), live: z.number().int(), failedRevocations: z.number().int(),
            bySystem: z.array(z.object({ system: z.string(), minted: z.number().int(), revoked: z.number().int(), live: z.number().int() }).strict()),
            credentials: z.array(liveCredential),
          }).strict(),
          'Live credentials oldest first',
        ),
      },
    },
    'GET /api/reports/latency': {
      summary: 'Event-to-verified latency (p50, p95) and steps verified, per hour or day',
      tags: ['reports'],
      request: { query: latencyQuery },
      errors: [400],
      ok: {
        200: json(
          z.object({
            ...reportWindow, bucket: z.enum(['hour', 'day']),
            overall: z.object({ verified: z.number().int(), p50Ms: z.number().nullable(), p95Ms: z.number().nullable() }).strict(),
            points: z.array(latencyPoint),
          }).strict(),
          'One point per bucket, oldest first',
        ),
      },
    },
    'GET /api/reports/kinds': {
      summary: 'Steps by action kind (joiner, mover, leaver, deploy, decommission, rotate) and their success rates',
      tags: ['reports'],
      request: { query: kindSplitQuery },
      errors: [400],
      ok: { 200: json(z.object({ ...reportWindow, total: z.number().int(), kinds: z.array(kindShare) }).strict(), 'Every kind, in registry order') },
    },
    'GET /api/certifications': {
      summary: 'Access certification items',
      tags: ['certifications'],
      request: { query: certificationListQuery },
      errors: [400],
      ok: { 200: json(page(certificationItem), 'By item id') },
    },
    'POST /api/certifications/{id}/decision': {
      summary: 'Keep or revoke each grant of a certification item',
      tags: ['certifications'],
      request: { params: z.object({ id: params.certificationId }), body: body(certificationDecisionBody) },
      errors: [400, 404, 409, 413, 415],
      ok: { 200: json(z.object({ id: z.string(), status: z.string(), evidenceHash: z.string() }).strict(), 'Recorded as evidence naming the caller') },
    },
    'GET /api/tokens': { summary: 'API tokens (never their values)', tags: ['tokens'], ok: { 200: json(z.object({ tokens: z.array(tokenInfo) }).strict(), 'Every token, revoked ones too') } },
    'POST /api/tokens': {
      summary: 'Make a named API token (machine roles only)',
      tags: ['tokens'],
      request: { body: body(createTokenRequest) },
      errors: [400, 409, 413, 415],
      ok: { 201: json(z.object({ ...tokenShape, token: z.string().openapi({ description: 'The token: in this response and nowhere else' }) }).strict(), 'Made') },
    },
    'DELETE /api/tokens/{name}': {
      summary: 'Revoke an API token',
      tags: ['tokens'],
      request: { params: z.object({ name: params.tokenName }) },
      errors: [400, 404],
      ok: { 200: json(tokenInfo, 'Revoked (a token already revoked stays as it was)') },
    },
  };
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid input: `issues` names each problem and where',
  401: 'No or a bad credential (a bearer token, or a webhook signature)',
  403: 'The caller holds none of the roles this route admits',
  404: 'Not found',
  409: 'Conflicts with the current state',
  413: 'The body exceeds the size limit',
  415: 'Unsupported content encoding or charset',
  500: 'Internal error (no details)',
  502: 'An upstream system refused',
  503: 'A dependency is unavailable (identity provider, workflow engine, signing key); retry later',
};

/** A mounted route as the router holds it: its method, express path, and the roles its gate admits (none: public). */
export interface MountedRoute {
  method: string;
  path: string;
  roles?: readonly Role[];
}

/** Every route the app mounts, read from its router. */
export function mountedRoutes(app: express.Express): MountedRoute[] {
  type Layer = { route?: { path: string; methods: Record<string, boolean>; stack: Array<{ handle: { admits?: readonly Role[] } }> } };
  return (app.router.stack as Layer[]).flatMap((layer) => {
    const route = layer.route;
    if (!route) return [];
    const roles = route.stack.map((l) => l.handle.admits).find((a) => a !== undefined);
    return Object.keys(route.methods).map((m) => ({ method: m.toUpperCase(), path: route.path, ...(roles ? { roles } : {}) }));
  });
}

/** `/api/x/:id` as OpenAPI writes it: `/api/x/{id}`. */
export const openApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/** The document for the routes `app` mounts. A mounted route without an entry is left out (the test fails on it). */
export function openApiDocument(app: express.Express) {
  const registry = new OpenAPIRegistry();
  registry.register('Error', errorEnvelope);
  const bearer = registry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: "An OIDC access token (a JWT from the configured issuer; roles from its claims) or a named API token (`cg_…`). CHANGEGATE_ADMIN_TOKEN counts as an operator. Each operation's `x-changegate-roles` lists the roles it admits.",
  });
  const all = entries();
  for (const route of mountedRoutes(app)) {
    const path = openApiPath(route.path);
    const entry = all[`${route.method} ${path}`];
    if (!entry) continue;
    const errorStatuses = new Set([...(entry.errors ?? []), 500]);
    if (route.roles) [401, 403, 503].forEach((s) => errorStatuses.add(s));
    if (path.startsWith('/webhooks/')) errorStatuses.add(401);
    const responses: Record<number, ResponseConfig> = { ...entry.ok };
    for (const status of [...errorStatuses].sort()) {
      if (responses[status]) continue;
      responses[status] = {
        ...json(errorEnvelope, ERROR_DESCRIPTIONS[status] ?? 'Error'),
        ...(status === 401 && route.roles ? { headers: { 'WWW-Authenticate': { description: 'Bearer realm="changegate" (RFC 6750)', schema: { type: 'string' } } } } : {}),
      };
    }
    registry.registerPath({
      method: route.method.toLowerCase() as RouteConfig['method'],
      path,
      summary: entry.summary,
      ...(entry.description ? { description: entry.description } : {}),
      tags: entry.tags,
      ...(entry.request ? { request: entry.request } : {}),
      responses,
      security: route.roles ? [{ [bearer.name]: [] }] : [],
      ...(route.roles ? { 'x-changegate-roles': [...route.roles] } : {}),
      ...(entry.extra ?? {}),
    });
  }
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'changegate',
      version: '0.1.0',
      description: 'ITSM change-workflow gateway. Errors are `{"error": {code, message, issues}}`. Webhooks take a signature over the raw bytes, never a bearer token.',
    },
  });
}
