import { z } from 'zod';
import { baseFields, envKey } from '../connector-config';
import { defineConnectorType, protectedNames } from '../connector-type';
import { createPostgresConnector } from './postgres-connector';
import { PG_IDENTIFIER, PostgresGrammar, roleNameProblem } from './postgres-grammar';

const identifier = z.string().regex(PG_IDENTIFIER, 'must be a lower-case PostgreSQL identifier (letters, digits, _)');
/** The connector's own role: any name PostgreSQL allows (it is always sent quoted), checked here, at config load. */
const roleName = z.string().superRefine((name, ctx) => {
  const problem = roleNameProblem(name);
  if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be a PostgreSQL role name: ${problem}` });
});

export const postgresInstanceSchema = z
  .object({
    ...baseFields,
    type: z.literal('postgres'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65_535).default(5432),
    /** Where the connector connects for role-level statements. */
    database: identifier.default('postgres'),
    /** Databases it manages: grants may only name these; a leaver's objects are reassigned or dropped in each. */
    databases: z.array(identifier).min(1).optional(),
    /** The connector's own role (protected; quoted in every statement, so e.g. `changegate-connector` works too). */
    user: roleName,
    /** The password is never in this file: it names the environment variable that holds it. */
    passwordEnv: envKey,
    /** A deleted leaver's objects: handed to `reassignTo` (which the connector's role must be a member of), or dropped. */
    ownedObjects: z.enum(['reassign', 'drop']),
    reassignTo: identifier.optional(),
    /** Roles a ticket may ask membership of (`MEMBER OF role`); none by default. Never changeable as identities. */
    grantableRoles: z.array(identifier).default([]),
    lockTimeoutMs: z.number().int().min(100).max(60_000).default(5_000),
    /** TLS to the server (verified against the system CAs); required off loopback unless allowPlain is set. */
    tls: z.boolean().default(false),
  })
  .strict();

export type PostgresInstanceConfig = z.infer<typeof postgresInstanceSchema>;

function settings(cfg: PostgresInstanceConfig) {
  // Cross-field rule kept out of the schema: the registry needs a plain zod object to discriminate on `type`.
  if (cfg.ownedObjects === 'reassign' && !cfg.reassignTo) {
    throw new Error(`connector '${cfg.name}': ownedObjects is 'reassign' but reassignTo is not set`);
  }
  const protectedAccounts = [...protectedNames(cfg, cfg.user), ...(cfg.reassignTo ? [cfg.reassignTo] : [])];
  return { databases: cfg.databases ?? [cfg.database], protectedAccounts };
}

export const postgresConnectorType = defineConnectorType<PostgresInstanceConfig>({
  type: 'postgres',
  schema: postgresInstanceSchema,
  capabilities: { rotation: 'one-phase' },
  transport: (cfg) => [{ host: cfg.host, encrypted: cfg.tls, fix: 'set "tls": true' }],
  grammar: (cfg) => {
    const { databases, protectedAccounts } = settings(cfg);
    return new PostgresGrammar({ protectedAccounts, databases, grantableRoles: cfg.grantableRoles });
  },
  create: (cfg, secrets) => {
    const { databases, protectedAccounts } = settings(cfg);
    return createPostgresConnector({
      name: cfg.name,
      host: cfg.host,
      port: cfg.port,
      database: cfg.database,
      databases,
      user: cfg.user,
      password: secrets(cfg.passwordEnv),
      protectedAccounts,
      grantableRoles: cfg.grantableRoles,
      ownedObjects: cfg.ownedObjects,
      reassignTo: cfg.reassignTo,
      lockTimeoutMs: cfg.lockTimeoutMs,
      tls: cfg.tls,
    });
  },
});
