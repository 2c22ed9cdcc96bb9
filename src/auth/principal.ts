/**
 * Who is calling. People arrive with an OIDC bearer token (a JWT from the configured issuer), machines with a
 * named API token. Either way the API sees one Principal, and whatever it decides records its Actor.
 */
export const ROLES = ['change-manager', 'security-reviewer', 'auditor', 'operator', 'integration'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** What evidence and workflow inputs record about the caller: never a credential, only who it was. */
export interface Actor {
  /** `policy`: no one decided; the governance policy did, at a deadline (an emergency exception's default). */
  kind: 'person' | 'token' | 'policy';
  /** The JWT `sub` for a person; the API token's id (or `CHANGEGATE_ADMIN_TOKEN`) for a token. */
  id: string;
  /** A display name: the person's `name` / `preferred_username` / `email`, or the token's name. */
  name: string;
}

export interface Principal {
  actor: Actor;
  roles: ReadonlySet<Role>;
}
