import type { NotifySettings } from './exceptions/notify';
import { z } from 'zod';
import { parseIsoDuration } from './actions/iso-duration';
import { DEFAULT_POLL_SILENCE_MS } from './temporal/poll-watch';
import { SEAL_KEY_MIN_BYTES } from './evidence/evidence-seal';
import { loadSigningKey } from './evidence/evidence-signing';
import { ASYMMETRIC_ALGORITHMS, type OidcSettings } from './auth/oidc-settings';
import { DEFAULT_STATE_PHASES, type ServiceNowStatePhases } from './itsm/servicenow/servicenow-phase';

const MAPPED_PHASES = ['draft', 'authorization', 'implement', 'review', 'closed', 'cancelled'] as const;
/** change_request state value → phase, as JSON, e.g. {"-5":"draft",...,"3":"closed","7":"closed"}. */
const statePhases = z
  .string()
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be a JSON object of state value to phase' });
      return z.NEVER;
    }
  })
  .pipe(
    z.record(
      z.string().regex(/^-?\d{1,9}$/, 'each key must be an integer state value such as -1'),
      z.enum(MAPPED_PHASES, { message: `each phase must be one of ${MAPPED_PHASES.join(', ')}` }),
    ),
  );

function isoInterval(fallback: string, minMs: number, maxMs: number, range: string) {
  return z
    .string()
    .default(fallback)
    .superRefine((text, ctx) => {
      const ms = parseIsoDuration(text);
      if (ms === null) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be an ISO-8601 duration such as PT5M' });
      else if (ms < minMs || ms > maxMs) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be between ${range}` });
    });
}

/**
 * The gateway's whole configuration: environment variables, parsed once at start-up.
 * A missing or malformed variable stops the process with a message that names it.
 */
const boolFlag = z.enum(['true', 'false']).transform((v) => v === 'true');
/** Keys and tokens travel only over TLS, or over loopback (a local test issuer). */
const issuerUrl = z
  .string()
  .url()
  .refine((u) => /^https:\/\//.test(u) || /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(\/|$)/.test(u), 'must be https:// (http:// only on loopback)');

const mysqlUrl = z
  .string()
  .url()
  .refine((u) => /^mysql:\/\//.test(u), 'must be a mysql:// URL');

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
  HOST: z.string().default('127.0.0.1'),
  DATABASE_URL: mysqlUrl.default('mysql://root@127.0.0.1:3306/changegate'),
  /**
   * The account migrations run as (the migration entry point, RUN_MIGRATIONS, `npm start`): it holds the DDL the
   * application account in DATABASE_URL must not. Unset, DATABASE_URL's account runs them too.
   */
  MIGRATION_DATABASE_URL: z.preprocess((v) => (v === '' ? undefined : v), mysqlUrl.optional()),
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('changegate'),
  // Workflows kept in the worker's sticky cache. Tickets wait for days, so the cache must not grow with the number
  // of open tickets: one beyond the bound is evicted and replayed from history when it next has work.
  TEMPORAL_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).max(100_000).default(250),
  // How long a worker's polls for workflow or activity tasks may go unseen by Temporal before the worker ends itself
  // (exit 1) for its supervisor to restart it; it must exceed the server's idle long poll (DEFAULT_POLL_SILENCE_MS).
  TEMPORAL_WORKER_POLL_SILENCE: isoInterval(`PT${DEFAULT_POLL_SILENCE_MS / 1000}S`, 1_000, 86_400_000, 'PT1S and P1D'),
  SERVICENOW_URL: z.string().url(),
  SERVICENOW_USERNAME: z.string().min(1),
  SERVICENOW_PASSWORD: z.string().min(1),
  SERVICENOW_WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters'),
  /**
   * change_request state value → phase (draft, authorization, implement, review, closed, cancelled) as JSON; unset, the
   * base system's model. A state it does not name is accepted as phase `unknown` (noted on the ticket); every state
   * mapped to `closed` must also be in the block-close rule's `x_changegate.closed_states` property.
   */
  SERVICENOW_STATE_PHASES: z.preprocess((v) => (v === '' ? undefined : v), statePhases.optional()),
  /** Where a change that closed without proven cleanup is moved back to: Review (0) unless configured. */
  SERVICENOW_REOPEN_STATE: z.string().regex(/^-?\d{1,9}$/, 'must be an integer state value such as 0').default('0'),
  /** change_task state values on this instance: where a review task opens and where it is closed. */
  SERVICENOW_TASK_STATE_OPEN: z.string().regex(/^-?\d{1,9}$/, 'must be an integer state value such as 1').default('1'),
  SERVICENOW_TASK_STATE_CLOSED: z.string().regex(/^-?\d{1,9}$/, 'must be an integer state value such as 3').default('3'),
  /** How often the worker reads back changes the webhook may have lost (ServiceNow never retries one): PT10S to P1D. */
  SERVICENOW_RECONCILE_INTERVAL: isoInterval('PT5M', 10_000, 86_400_000, 'PT10S and P1D'),
  /** How the worker authenticates to the Table API: basic (default) or OAuth tokens from /oauth_token.do. */
  SERVICENOW_AUTH: z.enum(['basic', 'oauth']).default('basic'),
  SERVICENOW_OAUTH_CLIENT_ID: z.preprocess((v) => (v === '' ? undefined : v), z.string().min(1).optional()),
  SERVICENOW_OAUTH_CLIENT_SECRET: z.preprocess((v) => (v === '' ? undefined : v), z.string().min(1).optional()),
  /** `password` (the integration user as resource owner) or `client_credentials` (where the instance enables it). */
  SERVICENOW_OAUTH_GRANT: z.enum(['password', 'client_credentials']).default('password'),
  /** Longest wait between two delivery attempts of a ticket update (the outbox's back-off ceiling), PT1S to PT1H. */
  CHANGEGATE_WRITEBACK_MAX_BACKOFF: z
    .string()
    .default('PT5M')
    .superRefine((text, ctx) => {
      const ms = parseIsoDuration(text);
      if (ms === null) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be an ISO-8601 duration such as PT5M' });
      else if (ms < 1_000 || ms > 3_600_000) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be between PT1S and PT1H' });
    }),
  /** HMAC key of pipelines' run events (POST /webhooks/deploy); unset or empty, every deploy event is refused. */
  DEPLOY_WEBHOOK_SECRET: z.preprocess((v) => (v === '' ? undefined : v), z.string().min(16, 'must be at least 16 characters').optional()),
  /** HMAC key of secret scanners' reports (POST /webhooks/secret-scanning); unset or empty, every report is refused. */
  SECRET_SCANNING_WEBHOOK_SECRET: z.preprocess((v) => (v === '' ? undefined : v), z.string().min(16, 'must be at least 16 characters').optional()),
  /** Where emergency-exception escalations (and deadline defaults) are announced: a URL the security team runs. */
  CHANGEGATE_NOTIFY_URL: z.preprocess((v) => (v === '' ? undefined : v), z.string().url().optional()),
  /** HMAC key each notification is signed with (X-Changegate-Signature); required with CHANGEGATE_NOTIFY_URL. */
  CHANGEGATE_NOTIFY_SECRET: z.preprocess((v) => (v === '' ? undefined : v), z.string().min(32, 'must be at least 32 characters').optional()),
  /** GitHub's REST API, where secret scanning alerts are fetched (GitHub Enterprise Server: https://<host>/api/v3). */
  GITHUB_API_URL: z.string().url().default('https://api.github.com'),
  /** A token that may read secret scanning alerts; unset, GitHub alerts are refused (the generic form still works). */
  GITHUB_TOKEN: z.preprocess((v) => (v === '' ? undefined : v), z.string().min(1).optional()),
  CHANGEGATE_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters'),
  /** Ed25519 key that signs evidence exports: PKCS#8 PEM, inline or a file path. Unset, exports answer 503. */
  CHANGEGATE_EVIDENCE_SIGNING_KEY: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .transform((value, ctx) => {
        try {
          return loadSigningKey(value);
        } catch (err) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
          return z.NEVER;
        }
      })
      .optional(),
  ),
  /**
   * The key every evidence row is sealed with (HMAC-SHA256 over the row's hash), held by the API and the worker and
   * never by the database: a row the database account could add is reported unless it carries this key's seal. At
   * least 32 bytes; required in production, and by every process that writes or checks evidence.
   */
  CHANGEGATE_EVIDENCE_SEAL_KEY: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .refine((v) => Buffer.byteLength(v, 'utf8') >= SEAL_KEY_MIN_BYTES, `must be at least ${SEAL_KEY_MIN_BYTES} bytes`)
      .optional(),
  ),
  /** People's bearer tokens: unset, only API tokens are accepted. */
  OIDC_ISSUER: issuerUrl.optional(),
  OIDC_AUDIENCE: z.string().min(1).optional(),
  /** Default: `jwks_uri` from `<OIDC_ISSUER>/.well-known/openid-configuration`. */
  OIDC_JWKS_URL: issuerUrl.optional(),
  OIDC_ROLES_CLAIM: z.string().regex(/^\S+$/, 'must be a claim name or a dotted path such as realm_access.roles').default('roles'),
  OIDC_ALGORITHMS: z
    .string()
    .default('RS256,ES256,EdDSA')
    .transform((v) => v.split(',').map((a) => a.trim()).filter(Boolean))
    .pipe(z.array(z.enum(ASYMMETRIC_ALGORITHMS, { message: `each must be one of ${ASYMMETRIC_ALGORITHMS.join(', ')} (no HS*, no none)` })).min(1)),
  OIDC_CLOCK_TOLERANCE_SECONDS: z.coerce.number().int().min(0).max(300).default(30),
  /** The dashboard's public client at OIDC_ISSUER (authorization code with PKCE, no secret) and the scope it asks for. */
  OIDC_DASHBOARD_CLIENT_ID: z.string().min(1).max(200).default('changegate-dashboard'),
  OIDC_DASHBOARD_SCOPE: z.string().regex(/^\S+( \S+)*$/, 'must be space-separated scopes').default('openid profile'),
  /** Temporal's Web UI, where the dashboard links a ticket's workflow; unset: no link. */
  TEMPORAL_UI_URL: z.preprocess((v) => (v === '' ? undefined : v), z.string().url().refine((u) => /^https?:\/\//.test(u), 'must be an http:// or https:// URL').optional()),
  /** Jira Cloud site (basic auth with JIRA_USERNAME, an e-mail, and JIRA_API_TOKEN); unset with no JIRA_CLOUD_ID, no Jira. */
  JIRA_URL: z.preprocess((v) => (v === '' ? undefined : v), z.string().url().refine((u) => /^https:\/\//.test(u) || /^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?(\/|$)/.test(u), 'must be https:// (http:// only on loopback)').optional()),
  JIRA_USERNAME: z.string().email('must be the integration account\'s e-mail').optional(),
  JIRA_API_TOKEN: z.string().min(1).optional(),
  /** OAuth 2.0 (3LO) instead of basic auth: the site's cloud id and an access token (api.atlassian.com/ex/jira/{cloudId}). */
  JIRA_CLOUD_ID: z.string().regex(/^[0-9a-fA-F-]{8,64}$/, 'must be the cloud id from accessible-resources').optional(),
  JIRA_OAUTH_TOKEN: z.string().min(1).optional(),
  /** The secret of the admin webhook (X-Hub-Signature). */
  JIRA_WEBHOOK_SECRET: z.preprocess((v) => (v === '' ? undefined : v), z.string().min(16, 'must be at least 16 characters').optional()),
  /** Status → phase mapping, custom field ids and the revert status of the Jira project (src/itsm/jira/jira-settings.ts). */
  JIRA_SETTINGS: z.string().min(1).default('config/jira.demo.json'),
  CONNECTORS_CONFIG: z.string().min(1).default('config/connectors.demo.json'),
  /** The governance policy file: who is who on a ticket, which grants need a change manager's decision. */
  CHANGEGATE_POLICY: z.string().min(1).default('config/policy.demo.json'),
  WEBHOOK_MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(10 * 1024 * 1024).default(256 * 1024),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  /** Prometheus metrics (GET /metrics) on a listener of their own, for scrapers; unset or empty, none is served. */
  CHANGEGATE_METRICS_PORT: z.preprocess((v) => (v === '' ? undefined : v), z.coerce.number().int().min(1).max(65_535).optional()),
  /** The metrics listener's address: loopback unless the scraper runs elsewhere (compose: 0.0.0.0 on an internal network). */
  CHANGEGATE_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  /** OpenTelemetry traces over OTLP/HTTP to `<endpoint>/v1/traces` (e.g. a collector on :4318); unset or empty, none. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.preprocess((v) => (v === '' ? undefined : v), z.string().url().refine((u) => /^https?:\/\//.test(u), 'must be an http:// or https:// URL').optional()),
  /** Let the API run pending migrations at start (the launcher and the compose one-shot normally do). */
  RUN_MIGRATIONS: boolFlag.default('false'),
  /** How often the discovery schedule reconciles the inventory with every target: an ISO-8601 duration, PT1M to P7D. */
  CHANGEGATE_DISCOVERY_INTERVAL: z
    .string()
    .default('PT1H')
    .superRefine((text, ctx) => {
      const ms = parseIsoDuration(text);
      if (ms === null) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be an ISO-8601 duration such as PT1H' });
      else if (ms < 60_000 || ms > 7 * 86_400_000) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be between PT1M and P7D' });
    }),
});

export type Config = z.infer<typeof configSchema>;

/** ServiceNow's state mapping (SERVICENOW_STATE_PHASES, default the base system's) and its reopen state. */
export function servicenowSettings(c: Config): { statePhases: ServiceNowStatePhases; reopenState: string; taskStates: { open: string; closed: string } } {
  return {
    statePhases: c.SERVICENOW_STATE_PHASES ?? DEFAULT_STATE_PHASES,
    reopenState: c.SERVICENOW_REOPEN_STATE,
    taskStates: { open: c.SERVICENOW_TASK_STATE_OPEN, closed: c.SERVICENOW_TASK_STATE_CLOSED },
  };
}

/** The URL migrations run with: the migration account's, or the application account's where one does both. */
export function migrationDatabaseUrl(c: Pick<Config, 'DATABASE_URL' | 'MIGRATION_DATABASE_URL'>): string {
  return c.MIGRATION_DATABASE_URL ?? c.DATABASE_URL;
}

/** How long a worker's polls may go unseen before it ends itself (validated by the schema). */
export function workerPollSilenceMs(c: Config): number {
  return parseIsoDuration(c.TEMPORAL_WORKER_POLL_SILENCE) ?? DEFAULT_POLL_SILENCE_MS;
}

/** Milliseconds between reconciliation passes with ServiceNow (validated by the schema). */
export function reconcileIntervalMs(c: Config): number {
  return parseIsoDuration(c.SERVICENOW_RECONCILE_INTERVAL) ?? 300_000;
}

/** Cross-field rules, kept off configSchema so that it stays pickable (migrate-config). */
const checkedConfigSchema = configSchema.superRefine((c, ctx) => {
  if (c.NODE_ENV === 'production' && !c.CHANGEGATE_EVIDENCE_SEAL_KEY) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['CHANGEGATE_EVIDENCE_SEAL_KEY'], message: 'is required in production (evidence rows are sealed with it)' });
  }
  if (c.OIDC_ISSUER && !c.OIDC_AUDIENCE) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['OIDC_AUDIENCE'], message: 'is required when OIDC_ISSUER is set' });
  if (c.JIRA_URL && c.JIRA_CLOUD_ID) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['JIRA_CLOUD_ID'], message: 'set either JIRA_URL (basic auth) or JIRA_CLOUD_ID (OAuth), not both' });
  const jiraNeeds = c.JIRA_URL ? (['JIRA_USERNAME', 'JIRA_API_TOKEN', 'JIRA_WEBHOOK_SECRET'] as const) : c.JIRA_CLOUD_ID ? (['JIRA_OAUTH_TOKEN', 'JIRA_WEBHOOK_SECRET'] as const) : [];
  for (const key of jiraNeeds) {
    if (!c[key]) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: `is required when ${c.JIRA_URL ? 'JIRA_URL' : 'JIRA_CLOUD_ID'} is set` });
  }
  if (c.SERVICENOW_AUTH === 'oauth') {
    for (const key of ['SERVICENOW_OAUTH_CLIENT_ID', 'SERVICENOW_OAUTH_CLIENT_SECRET'] as const) {
      if (!c[key]) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: 'is required when SERVICENOW_AUTH is oauth' });
    }
  }
  if (c.CHANGEGATE_NOTIFY_URL && !c.CHANGEGATE_NOTIFY_SECRET) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['CHANGEGATE_NOTIFY_SECRET'], message: 'is required when CHANGEGATE_NOTIFY_URL is set (notifications are signed)' });
  }
  for (const key of ['OIDC_AUDIENCE', 'OIDC_JWKS_URL'] as const) {
    if (c[key] && !c.OIDC_ISSUER) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: 'has no effect without OIDC_ISSUER' });
  }
});

/**
 * The evidence seal key, for a process that writes or checks evidence (the API, the worker): without it every row
 * would be reported unsealed, so such a process refuses to start, whatever NODE_ENV says.
 */
export function evidenceSealKey(c: Config): string {
  if (!c.CHANGEGATE_EVIDENCE_SEAL_KEY) {
    throw new ConfigError(['CHANGEGATE_EVIDENCE_SEAL_KEY: is required (at least 32 bytes; every evidence row is sealed with it)']);
  }
  return c.CHANGEGATE_EVIDENCE_SEAL_KEY;
}

/** Where escalations are announced, if configured. */
export function notifySettings(c: Config): NotifySettings | undefined {
  return c.CHANGEGATE_NOTIFY_URL && c.CHANGEGATE_NOTIFY_SECRET ? { url: c.CHANGEGATE_NOTIFY_URL, secret: c.CHANGEGATE_NOTIFY_SECRET } : undefined;
}

/** The dashboard's client at the issuer and the Temporal UI it links to (GatewayOptions.dashboard). */
export function dashboardSettings(c: Config): { clientId: string; scope: string; temporalUiUrl?: string } {
  return { clientId: c.OIDC_DASHBOARD_CLIENT_ID, scope: c.OIDC_DASHBOARD_SCOPE, ...(c.TEMPORAL_UI_URL ? { temporalUiUrl: c.TEMPORAL_UI_URL } : {}) };
}

export function oidcSettings(c: Config): OidcSettings | undefined {
  if (!c.OIDC_ISSUER || !c.OIDC_AUDIENCE) return undefined;
  return {
    issuer: c.OIDC_ISSUER,
    audience: c.OIDC_AUDIENCE,
    rolesClaim: c.OIDC_ROLES_CLAIM,
    jwksUrl: c.OIDC_JWKS_URL,
    algorithms: c.OIDC_ALGORITHMS,
    clockToleranceSeconds: c.OIDC_CLOCK_TOLERANCE_SECONDS,
  };
}

/** The Jira site as configured (basic auth or OAuth), or undefined when none is. */
export function jiraSite(c: Config): { kind: 'basic'; siteUrl: string; email: string; apiToken: string } | { kind: 'oauth'; cloudId: string; accessToken: string } | undefined {
  if (c.JIRA_URL && c.JIRA_USERNAME && c.JIRA_API_TOKEN) return { kind: 'basic', siteUrl: c.JIRA_URL, email: c.JIRA_USERNAME, apiToken: c.JIRA_API_TOKEN };
  if (c.JIRA_CLOUD_ID && c.JIRA_OAUTH_TOKEN) return { kind: 'oauth', cloudId: c.JIRA_CLOUD_ID, accessToken: c.JIRA_OAUTH_TOKEN };
  return undefined;
}

/** The ServiceNow client's credentials: basic, or OAuth with the client registered on the instance. */
export function servicenowCredentials(c: Config): { username: string; password: string; oauth?: { clientId: string; clientSecret: string; grant: 'password' | 'client_credentials' } } {
  const base = { username: c.SERVICENOW_USERNAME, password: c.SERVICENOW_PASSWORD };
  if (c.SERVICENOW_AUTH !== 'oauth' || !c.SERVICENOW_OAUTH_CLIENT_ID || !c.SERVICENOW_OAUTH_CLIENT_SECRET) return base;
  return { ...base, oauth: { clientId: c.SERVICENOW_OAUTH_CLIENT_ID, clientSecret: c.SERVICENOW_OAUTH_CLIENT_SECRET, grant: c.SERVICENOW_OAUTH_GRANT } };
}

/** The outbox's back-off: a second after the first failure, doubling up to the configured ceiling. */
export function writeBackBackoff(c: Config): { initialMs: number; maxMs: number } {
  return { initialMs: 1_000, maxMs: parseIsoDuration(c.CHANGEGATE_WRITEBACK_MAX_BACKOFF) ?? 300_000 };
}

/** Milliseconds between discovery runs (validated by the schema). */
export function discoveryIntervalMs(c: Config): number {
  return parseIsoDuration(c.CHANGEGATE_DISCOVERY_INTERVAL) ?? 3_600_000;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = checkedConfigSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
  }
  return parsed.data;
}

/** The metrics listener, if CHANGEGATE_METRICS_PORT is set. */
export function metricsListen(c: Config): { port: number; host: string } | undefined {
  return c.CHANGEGATE_METRICS_PORT === undefined ? undefined : { port: c.CHANGEGATE_METRICS_PORT, host: c.CHANGEGATE_METRICS_HOST };
}
