import { z } from 'zod';
import { parseIsoDuration } from '../actions/iso-duration';
import { attributionSchema } from '../kinds/spec';

/** Attribute names an ownership rule may read; never one that holds a credential. */
const RULE_ATTRIBUTE = /^[A-Za-z][A-Za-z0-9:._-]{0,127}$/;
const SECRET_ATTRIBUTE = /pass(word)?|pwd|secret|token|credential|private|key$|hash/i;

/**
 * One ownership rule: identities discovery lists that match (`namePrefix`, or an attribute — an LDAP attribute or an
 * IAM tag — present, or equal to `equals`) get this owner and/or workload in the inventory. Rules map, they never
 * adopt: an orphan that a rule maps stays an orphan.
 */
export const ownershipRuleSchema = z
  .object({
    namePrefix: z.string().min(1).max(256).optional(),
    attribute: z
      .string()
      .regex(RULE_ATTRIBUTE, 'must be an attribute or tag name (letters, digits, : . _ -)')
      .refine((a) => !SECRET_ATTRIBUTE.test(a), 'must not name an attribute that holds a credential')
      .optional(),
    equals: z.string().min(1).max(256).optional(),
    owner: attributionSchema.optional(),
    workload: attributionSchema.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if ((r.namePrefix === undefined) === (r.attribute === undefined)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'needs exactly one of namePrefix or attribute' });
    if (r.equals !== undefined && r.attribute === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['equals'], message: 'applies only with attribute' });
    if (r.owner === undefined && r.workload === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'needs an owner, a workload or both' });
  });
export type OwnershipRule = z.infer<typeof ownershipRuleSchema>;

/** Policy every connector instance carries; each type's own settings sit beside it. */
export const policySchema = z
  .object({
    /** Longest TTL a joiner may ask for; longer requests are refused at the edge. */
    maxTtl: z.string().refine((t) => parseIsoDuration(t) !== null, 'must be an ISO-8601 duration').optional(),
    /** Identities the gateway must never touch, whatever a ticket says (its own credential is always added). */
    protectedAccounts: z.array(z.string().min(1)).default([]),
    /** What a leaver does: delete the identity, or disable it and strip its grants (kept for audit/ownership). */
    revokeMode: z.enum(['delete', 'disable']).default('delete'),
    /** Maps discovered identities to owners and workloads (first matching rule per field wins); see ownershipRuleSchema. */
    ownership: z.array(ownershipRuleSchema).max(200).optional(),
  })
  .strict()
  .default({});

export type ConnectorPolicy = z.infer<typeof policySchema>;

/** Names an environment variable holding a credential: the file itself never holds one. */
export const envKey = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must name an environment variable (A-Z, 0-9, _)');

/** Fields every connector instance has. A type's schema is `z.object({...baseFields, type: z.literal('x'), ...}).strict()`. */
export const baseFields = {
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and hyphens'),
  policy: policySchema,
  /** Lets the credential travel unencrypted to a non-loopback host (see requireEncryptedTransport). */
  allowPlain: z.boolean().default(false),
};

export interface BaseInstanceConfig {
  name: string;
  type: string;
  allowPlain?: boolean;
  /** Parsed files always carry `revokeMode`; configs built in code may leave it to default to delete. */
  policy: Omit<ConnectorPolicy, 'revokeMode' | 'ownership'> & { revokeMode?: ConnectorPolicy['revokeMode']; ownership?: OwnershipRule[] };
}

/** Reads a credential named by the config from the environment; a missing one is a startup error naming the key. */
export type SecretSource = (envKey: string) => string;

export function envSecrets(env: NodeJS.ProcessEnv, connector: string): SecretSource {
  return (key) => {
    const value = env[key];
    if (value === undefined) throw new Error(`connector '${connector}': environment variable ${key} is not set`);
    return value;
  };
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[?::1\]?)$/i;

/**
 * Credentials (bind passwords, tokens, rotated values) cross the wire: unencrypted only to loopback, elsewhere only
 * when the configuration says so explicitly. Checked when the API or worker loads the file, so a bad one never starts.
 */
export function requireEncryptedTransport(cfg: { name: string; allowPlain?: boolean }, host: string, encrypted: boolean, fix: string): void {
  if (encrypted || LOOPBACK.test(host) || cfg.allowPlain) return;
  throw new Error(`connector '${cfg.name}': credentials would cross the network to ${host} unencrypted; ${fix}, or set "allowPlain": true`);
}
