import { z } from 'zod';
import { baseFields, envKey, requireEncryptedTransport } from '../connector-config';
import { defineConnectorType } from '../connector-type';
import { createVaultConnector } from './vault-connector';
import { VaultGrammar } from './vault-grammar';

/** A mount or prefix: slash-separated segments that need no URL escaping. */
const vaultPath = z.string().regex(/^[A-Za-z0-9_-]{1,64}(\/[A-Za-z0-9_-]{1,64}){0,7}$/, 'must be slash-separated segments of letters, digits, _ or -');
const vaultName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, _ or -');

export const vaultInstanceSchema = z
  .object({
    ...baseFields,
    type: z.literal('vault'),
    /**
     * Vault or OpenBao, e.g. https://vault.internal:8200 (no trailing /v1). The token travels in every request, so
     * plain http is accepted only to loopback (127.0.0.0/8, ::1, localhost) or with `allowPlain: true`.
     */
    address: z.string().url().refine((u) => /^https?:\/\//.test(u), 'must be an http(s) URL'),
    /** The token is never in this file: it names the environment variable that holds it. */
    tokenEnv: envKey,
    kvMount: vaultPath.default('secret'),
    /** Every KV path the connector reads or writes lies under this prefix. */
    kvPrefix: vaultPath,
    databaseMount: vaultPath.default('database'),
    /** Database roles whose leases discovery lists. */
    databaseRoles: z.array(vaultName).default([]),
    pkiMount: vaultPath.default('pki'),
    /** The PKI role certificates are issued with; pki identities are refused without one. */
    pkiRole: vaultName.optional(),
    /** Requested certificate lifetime, a Vault duration such as "720h"; the role's default when absent. */
    pkiTtl: z.string().regex(/^[0-9]{1,6}[smhd]$/, 'must be a Vault duration such as 720h').optional(),
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
    /**
     * The MySQL/MariaDB server the database engine creates users in, read to see the users db/<role> leases created
     * (a lease Vault calls revoked whose user survived is not revoked). Required for every role in databaseRoles; a
     * db/ identity of a role without a prefix here cannot be read back and is refused.
     */
    databaseUsers: z
      .object({
        host: z.string().min(1),
        port: z.number().int().min(1).max(65_535).default(3306),
        /** An account holding only SELECT (User) on `table`: names, never the password hashes beside them. */
        user: z.string().min(1),
        passwordEnv: envKey,
        tls: z.boolean().default(false),
        table: z.enum(['mysql.global_priv', 'mysql.user']).default('mysql.global_priv'),
        /** For each database role: the prefix every user its leases create starts with (from the engine's username_template). */
        userPrefixes: z.record(vaultName, z.string().min(1).max(80)),
      })
      .strict()
      // A role's read-back sees every user whose name starts with its prefix: one prefix starting another's would let
      // a role's leaver see (and fail on) the other role's users, or a surviving user of one pass as the other's.
      .superRefine((db, ctx) => {
        const roles = Object.keys(db.userPrefixes).sort();
        for (const a of roles) {
          for (const b of roles) {
            const [pa, pb] = [db.userPrefixes[a], db.userPrefixes[b]];
            if (a === b || !pb.startsWith(pa) || (pa === pb && a > b)) continue;
            ctx.addIssue({
              code: z.ZodIssueCode.custom,
              path: ['userPrefixes', b],
              message: `the user name prefix of database role '${b}' (${pb}) ${pa === pb ? 'is the same as' : 'starts with'} that of database role '${a}' (${pa}): the read-back of '${a}' would see the users of '${b}'; give each role a prefix no other begins with`,
            });
          }
        }
      })
      .optional(),
  })
  .strict();

export type VaultInstanceConfig = z.infer<typeof vaultInstanceSchema>;

/** Where the token goes: the registry refuses a plain channel off loopback when it loads the file. */
function transport(cfg: VaultInstanceConfig): Array<{ host: string; encrypted: boolean; fix: string }> {
  const url = new URL(cfg.address);
  const db = cfg.databaseUsers;
  return [
    { host: url.hostname, encrypted: url.protocol === 'https:', fix: 'use an https:// address' },
    ...(db ? [{ host: db.host, encrypted: db.tls, fix: 'set "databaseUsers.tls": true' }] : []),
  ];
}

/**
 * The gateway's own token is `token/<display name>` in discovery: a kind the grammar never accepts, so no ticket
 * can name it. Configured protectedAccounts are refused by name; a `kv/` entry (e.g. `kv/gateway/bootstrap`) also
 * protects every path under it, as an identity and as a rotation destination.
 */
export const vaultConnectorType = defineConnectorType<VaultInstanceConfig>({
  type: 'vault',
  schema: vaultInstanceSchema,
  // KV values and PKI certificates rotate (a certificate's predecessors are retired once the new key works); db/ leases
  // do not, and say so. The only secrets store: rotated credentials are delivered to a KV path.
  capabilities: { rotation: 'two-phase', secretSink: true },
  grammar: (cfg) => new VaultGrammar({ protectedAccounts: cfg.policy.protectedAccounts }),
  transport,
  create: (cfg, secrets) => {
    // Checked again here for a connector built without the registry: the token must not leave in clear.
    for (const t of transport(cfg)) requireEncryptedTransport(cfg, t.host, t.encrypted, t.fix);
    const unmapped = cfg.databaseRoles.filter((r) => !cfg.databaseUsers || !Object.hasOwn(cfg.databaseUsers.userPrefixes, r));
    if (unmapped.length > 0) {
      throw new Error(
        `connector '${cfg.name}': databaseRoles ${unmapped.join(', ')} need a user name prefix in databaseUsers.userPrefixes: without it a revoked lease whose database user survived would pass its read-back`,
      );
    }
    return createVaultConnector({
      name: cfg.name,
      address: cfg.address,
      token: secrets(cfg.tokenEnv),
      kvMount: cfg.kvMount,
      kvPrefix: cfg.kvPrefix,
      databaseMount: cfg.databaseMount,
      databaseRoles: cfg.databaseRoles,
      pkiMount: cfg.pkiMount,
      pkiRole: cfg.pkiRole,
      pkiTtl: cfg.pkiTtl,
      protectedAccounts: cfg.policy.protectedAccounts,
      timeoutMs: cfg.timeoutMs,
      ...(cfg.databaseUsers ? { databaseUsers: { ...cfg.databaseUsers, password: secrets(cfg.databaseUsers.passwordEnv) } } : {}),
    });
  },
});
