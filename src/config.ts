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
  if (c.JIRA_URL && c.JIRA_CLOUD_ID) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['JIRA_CLOUD_ID'], message: 'set either JIRA_URL (basic auth) or JIRA_CLOUD_ID (OAuth), not both' });
  const jiraNeeds = c.JIRA_URL ? (['JIRA_USERNAME', 'JIRA_API_TOKEN', 'JIRA_WEBHOOK_SECRET'] as const) : c.JIRA_CLOUD_ID ? (['JIRA_OAUTH_TOKEN', 'JIRA_WEBHOOK_SECRET'] as const) : [];
  for (const key of jiraNeeds) {
    if (!c[key]) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: `is required when ${c.JIRA_URL ? 'JIRA_URL' : 'JIRA_CLOUD_ID'} is set` });
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

/** The Jira site as configured (basic auth or OAuth), or undefined when none is. */
export function jiraSite(c: Config): { kind: 'basic'; siteUrl: string; email: string; apiToken: string } | { kind: 'oauth'; cloudId: string; accessToken: string } | undefined {
  if (c.JIRA_URL && c.JIRA_USERNAME && c.JIRA_API_TOKEN) return { kind: 'basic', siteUrl: c.JIRA_URL, email: c.JIRA_USERNAME, apiToken: c.JIRA_API_TOKEN };
  if (c.JIRA_CLOUD_ID && c.JIRA_OAUTH_TOKEN) return { kind: 'oauth', cloudId: c.JIRA_CLOUD_ID, accessToken: c.JIRA_OAUTH_TOKEN };
  return undefined;
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
