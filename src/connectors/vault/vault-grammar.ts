import type { IdentityRef } from '../../actions/identity-action';
import { type ConnectorGrammar, DISABLED_STATE, type FieldProblem, GONE, type ParsedGrant, type RevokeDeviation } from '../connector';

/**
 * The identities and grants the Vault-API connector speaks. An identity name says which kind of thing it is:
 *
 *   kv/<path>          a managed KV v2 secret at <kvMount>/data/<kvPrefix>/<path>
 *   db/<role>          the dynamic database credentials (leases) of <databaseMount>/creds/<role>
 *   pki/<common-name>  every unexpired, non-CA certificate with that CN stored in <pkiMount>, whichever role issued it
 *
 * Certificates are matched on CN within the mount, not on the role: neither Vault nor OpenBao records the issuing
 * role on a stored certificate (`<pkiMount>/cert/<serial>` returns the certificate and its revocation time, plus
 * `issuer_id` once revoked; `certs/detailed` adds names and the issuer DN, no role). The connector issues only with
 * <pkiRole>, but inspect, revoke and rotation also see (and revoke) certificates another role of the same mount issued
 * with the same CN. Narrowing to the role's issuer would hide live certificates from a leaver after an issuer rotation,
 * so it is not done: give the gateway a mount, or a domain, whose CNs no other role issues.
 *
 * Grants: `reader=<label>` (kv), `dns=<host name>` (pki, one DNS SAN), `login` (db). Every part that reaches a
 * Vault URL is restricted here to characters that need no escaping, and is URI-encoded on top of that.
 *
 * Protected `kv/<path>` entries of policy.protectedAccounts protect that path and everything under it, both as
 * identities and as rotation destinations.
 */
export type VaultIdentity =
  | { kind: 'kv'; path: string[] }
  | { kind: 'db'; role: string }
  | { kind: 'pki'; commonName: string };

export type VaultGrant = { kind: 'kv'; reader: string } | { kind: 'pki'; dns: string } | { kind: 'db' };

const SEGMENT = /^[A-Za-z0-9._-]{1,64}$/;
const ONLY_DOTS = /^\.+$/;
const MAX_SEGMENTS = 8;
const ROLE = /^[A-Za-z0-9_-]{1,64}$/;
const LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A KV path relative to the prefix: 1-8 segments of [A-Za-z0-9._-], none of them `.` or `..`. */
export function kvPathProblem(path: string): string | null {
  const segments = path.split('/');
  if (segments.length > MAX_SEGMENTS) return `a KV path has at most ${MAX_SEGMENTS} segments`;
  for (const s of segments) {
    if (!SEGMENT.test(s)) return 'each KV path segment must be 1-64 characters of letters, digits, dot, underscore or hyphen';
    if (ONLY_DOTS.test(s)) return "KV path segments '.' and '..' (or any run of dots) are not allowed";
  }
  return null;
}

/** A lower-case DNS host name without wildcards: what a certificate's CN and DNS SANs may hold here. */
export function hostNameProblem(name: string): string | null {
  if (name.length > 253) return 'a host name is at most 253 characters';
  const labels = name.split('.');
  if (labels.length < 2) return 'a host name needs at least two labels (e.g. app.example.internal)';
  if (!labels.every((l) => DNS_LABEL.test(l))) return 'a host name is lower-case letters, digits and inner hyphens, in dot-separated labels of 1-63 characters (no wildcards)';
  return null;
}

export function parseVaultIdentity(name: string): VaultIdentity | { problem: string } {
  const slash = name.indexOf('/');
  const kind = slash < 0 ? '' : name.slice(0, slash);
  const rest = slash < 0 ? '' : name.slice(slash + 1);
  switch (kind) {
    case 'kv': {
      const problem = kvPathProblem(rest);
      return problem ? { problem } : { kind: 'kv', path: rest.split('/') };
    }
    case 'db':
      return ROLE.test(rest) ? { kind: 'db', role: rest } : { problem: 'a database role name is 1-64 characters of letters, digits, underscore or hyphen' };
    case 'pki': {
      const problem = hostNameProblem(rest);
      return problem ? { problem: `certificate common name: ${problem}` } : { kind: 'pki', commonName: rest };
    }
    default:
      return { problem: "must be 'kv/<path>', 'db/<role>' or 'pki/<common-name>'" };
  }
}

export function parseVaultGrant(text: string): VaultGrant | { problem: string } {
  if (text === 'login') return { kind: 'db' };
  const eq = text.indexOf('=');
  const key = eq < 0 ? text : text.slice(0, eq);
  const value = eq < 0 ? '' : text.slice(eq + 1);
  if (key === 'reader') {
    return LABEL.test(value) ? { kind: 'kv', reader: value } : { problem: 'a reader label is 1-64 characters of letters, digits, dot, underscore or hyphen, starting with a letter or digit' };
  }
  if (key === 'dns') {
    const problem = hostNameProblem(value);
    return problem ? { problem: `dns: ${problem}` } : { kind: 'pki', dns: value };
  }
  return { problem: "must be 'reader=<label>' (kv), 'dns=<host name>' (pki) or 'login' (db)" };
}

export function grantText(g: VaultGrant): string {
  if (g.kind === 'kv') return `reader=${g.reader}`;
  if (g.kind === 'pki') return `dns=${g.dns}`;
  return 'login';
}

export interface VaultGrammarPolicy {
  /** Identity names the gateway must never touch, whatever a ticket says. */
  protectedAccounts: string[];
}

const kindOf = (identity: IdentityRef): string | undefined => {
  const parsed = parseVaultIdentity(identity.name);
  return 'problem' in parsed ? undefined : parsed.kind;
};

/** Two kinds of Vault credential cannot be treated as a policy says; KV secrets can under either. */
export const VAULT_REVOKE_DEVIATIONS: readonly RevokeDeviation[] = Object.freeze([
  {
    mode: 'disable',
    identities: 'db/<role> (dynamic database credentials)',
    applies: (identity: IdentityRef) => kindOf(identity) === 'db',
    leaves: GONE,
    reason: 'a Vault lease cannot be suspended, only revoked: disable revokes every lease, and the database user each one created is dropped',
  },
  {
    mode: 'delete',
    identities: 'pki/<common-name> (certificates)',
    applies: (identity: IdentityRef) => kindOf(identity) === 'pki',
    leaves: DISABLED_STATE,
    reason: 'a certificate cannot be deleted, only revoked: delete revokes every live certificate of the CN, and the revoked records stay until they expire',
  },
]);

export class VaultGrammar implements ConnectorGrammar {
  readonly type = 'vault';

  inventoryType(name: string): string | undefined {
    if (name.startsWith('kv/')) return 'secret';
    if (name.startsWith('pki/')) return 'certificate';
    if (name.startsWith('token/')) return 'api_key';
    return undefined;
  }
  readonly revokeDeviations = VAULT_REVOKE_DEVIATIONS;
  private readonly protectedAccounts: Set<string>;
  /** KV paths (relative to the prefix) that are protected together with everything under them. */
  private readonly protectedKv: string[];

  constructor(policy: VaultGrammarPolicy) {
    this.protectedAccounts = new Set(policy.protectedAccounts);
    this.protectedKv = policy.protectedAccounts.filter((a) => a.startsWith('kv/')).map((a) => a.slice(3));
  }

  /** True for a protected `kv/<path>` entry's path and every path under it. */
  isProtectedKvPath(path: string): boolean {
    return this.protectedKv.some((p) => path === p || path.startsWith(`${p}/`));
  }

  /** Protected by name, or a KV path at or under a protected one. */
  isProtected(name: string): boolean {
    return this.protectedAccounts.has(name) || (name.startsWith('kv/') && this.isProtectedKvPath(name.slice(3)));
  }

  validateIdentity(identity: IdentityRef): FieldProblem[] {
    const problems: FieldProblem[] = [];
    const parsed = parseVaultIdentity(identity.name);
    if ('problem' in parsed) problems.push({ path: 'identity.name', message: parsed.problem });
    else if (this.isProtected(identity.name)) {
      problems.push({ path: 'identity.name', message: `'${identity.name}' is protected and cannot be changed by a ticket` });
    }
    if (identity.host !== undefined) problems.push({ path: 'identity.host', message: 'Vault identities have no host part' });
    return problems;
  }

  /**
   * A rotation's destination: a KV path under the connector's prefix, not at or under a protected `kv/` entry. It may
   * be a path the connector also manages as the identity `kv/<path>`: delivering there is writing that secret.
   */
  validateSecretPath(path: string): string | null {
    const problem = kvPathProblem(path);
    if (problem) return problem;
    return this.isProtectedKvPath(path) ? `'${path}' is protected (policy.protectedAccounts): the gateway does not write there` : null;
  }

  parseGrant(text: string): ParsedGrant | { problem: string } {
    const parsed = parseVaultGrant(text);
    return 'problem' in parsed ? parsed : { canonical: [grantText(parsed)] };
  }
}
