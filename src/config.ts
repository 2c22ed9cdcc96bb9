import { z } from 'zod';
import { parseIsoDuration } from './actions/iso-duration';
import { ASYMMETRIC_ALGORITHMS, type OidcSettings } from './auth/oidc-settings';

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

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
  HOST: z.string().default('127.0.0.1'),
  DATABASE_URL: z
    .string()
    .url()
    .refine((u) => /^mysql:\/\//.test(u), 'must be a mysql:// URL')
    .default('mysql://root@127.0.0.1:3306/changegate'),
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('changegate'),
  // Workflows kept in the worker's sticky cache. Tickets wait for days, so the cache must not grow with the number
  // of open tickets: one beyond the bound is evicted and replayed from history when it next has work.
  TEMPORAL_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).max(100_000).default(250),
  SERVICENOW_URL: z.string().url(),
  SERVICENOW_USERNAME: z.string().min(1),
  SERVICENOW_PASSWORD: z.string().min(1),
  SERVICENOW_WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters'),
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
  CHANGEGATE_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters'),
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
  CONNECTORS_CONFIG: z.string().min(1).default('config/connectors.demo.json'),
  /** The governance policy file: who is who on a ticket, which grants need a change manager's decision. */
  CHANGEGATE_POLICY: z.string().min(1).default('config/policy.demo.json'),
  WEBHOOK_MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(10 * 1024 * 1024).default(256 * 1024),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
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

/** Cross-field rules, kept off configSchema so that it stays pickable (migrate-config). */
const checkedConfigSchema = configSchema.superRefine((c, ctx) => {
  if (c.OIDC_ISSUER && !c.OIDC_AUDIENCE) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['OIDC_AUDIENCE'], message: 'is required when OIDC_ISSUER is set' });
  if (c.SERVICENOW_AUTH === 'oauth') {
    for (const key of ['SERVICENOW_OAUTH_CLIENT_ID', 'SERVICENOW_OAUTH_CLIENT_SECRET'] as const) {
      if (!c[key]) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: 'is required when SERVICENOW_AUTH is oauth' });
    }
  }
  for (const key of ['OIDC_AUDIENCE', 'OIDC_JWKS_URL'] as const) {
    if (c[key] && !c.OIDC_ISSUER) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: 'has no effect without OIDC_ISSUER' });
  }
});

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
