import { z } from 'zod';
import { createScimServer, SCIM_SCOPES, type ScimTokenGrant } from './scim-server';

/**
 * Runs the SCIM service provider standalone. Tokens come from the environment only:
 *   SCIM_TOKENS='[{"token":"…","userName":"changegate-scim","scopes":["users:read","users:write","groups:read","groups:members"]}]'
 * or the shorthands SCIM_GATEWAY_TOKEN (the gateway's least-privilege scopes, user changegate-scim) and
 * SCIM_ADMIN_TOKEN (every scope, user scim-admin).
 */
const GATEWAY_SCOPES = ['users:read', 'users:write', 'groups:read', 'groups:members'] as const;

const tokenSchema = z
  .object({
    token: z.string().min(16, 'tokens must be at least 16 characters'),
    userName: z.string().min(1),
    scopes: z.array(z.enum(SCIM_SCOPES)),
    ratePerMinute: z.number().int().min(1).optional(),
  })
  .strict();

const json = <T extends z.ZodTypeAny>(schema: T) =>
  z.string().transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be JSON' });
      return z.NEVER;
    }
  }).pipe(schema);

const envSchema = z.object({
  SCIM_PORT: z.coerce.number().int().min(0).max(65_535).default(8095),
  SCIM_HOST: z.string().min(1).default('127.0.0.1'),
  SCIM_TOKENS: json(z.array(tokenSchema)).optional(),
  SCIM_GATEWAY_TOKEN: z.string().min(16).optional(),
  SCIM_ADMIN_TOKEN: z.string().min(16).optional(),
  SCIM_MAX_PAGE_SIZE: z.coerce.number().int().min(1).max(1000).default(50),
  /** JSON array of group displayNames whose member writes are acknowledged and dropped. */
  SCIM_IGNORE_MEMBER_WRITES_FOR: json(z.array(z.string().min(1))).optional(),
  SCIM_IGNORE_MEMBER_WRITES_BY: json(z.array(z.string().min(1))).optional(),
  SCIM_USER_GROUPS: z.enum(['report', 'omit']).default('report'),
});

async function main(): Promise<void> {
  const parsed = envSchema.safeParse(process.env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) console.error(`scim-server: ${issue.path.join('.')}: ${issue.message}`);
    process.exit(1);
  }
  const env = parsed.data;
  const tokens: ScimTokenGrant[] = [...(env.SCIM_TOKENS ?? [])];
  if (env.SCIM_GATEWAY_TOKEN) tokens.push({ token: env.SCIM_GATEWAY_TOKEN, userName: 'changegate-scim', scopes: [...GATEWAY_SCOPES] });
  if (env.SCIM_ADMIN_TOKEN) tokens.push({ token: env.SCIM_ADMIN_TOKEN, userName: 'scim-admin', scopes: [...SCIM_SCOPES] });
  if (tokens.length === 0) {
    console.error('scim-server: no tokens: set SCIM_TOKENS, SCIM_GATEWAY_TOKEN or SCIM_ADMIN_TOKEN');
    process.exit(1);
  }
  const server = await createScimServer({
    tokens,
    maxPageSize: env.SCIM_MAX_PAGE_SIZE,
    ignoreMemberWritesFor: env.SCIM_IGNORE_MEMBER_WRITES_FOR,
    ignoreMemberWritesBy: env.SCIM_IGNORE_MEMBER_WRITES_BY,
    userGroups: env.SCIM_USER_GROUPS === 'report',
  }).listen(env.SCIM_PORT, env.SCIM_HOST);
  console.log(`scim-server listening on ${server.url}`);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error('scim-server: failed to start', err);
  process.exit(1);
});
