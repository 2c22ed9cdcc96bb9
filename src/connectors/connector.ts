import type { IdentityRef } from '../actions/identity-action';

/** A grant in a target's own grammar, parsed and normalised so that it can be compared with what the target reports. */
export interface ParsedGrant {
  /** Canonical text, e.g. "SELECT ON `billing`.*"; the unit verification compares. */
  canonical: string[];
}

export interface FieldProblem {
  /** Path relative to the action, e.g. `identity.name` or `grants[0]`. */
  path: string;
  message: string;
}

/** What a target reports about one identity. JSON-serialisable: it lands in evidence. Never holds a secret. */
export interface ObservedAccount {
  exists: boolean;
  locked?: boolean;
  grants: string[];
  activeSessions?: number;
}

/** What a step wants the target to look like afterwards. */
export interface DesiredAccount {
  exists: boolean;
  /** Grants that must be present (joiner) — compared by canonical text. */
  mustHave?: string[];
  /** Grants that must be absent (expiry of a joiner's grants). */
  mustNotHave?: string[];
}

export interface Verification {
  verified: boolean;
  mismatches: string[];
}

export interface RevokeOutcome {
  /** False when there was nothing to revoke: the identity was already gone. */
  changed: boolean;
  detail: string;
}

export interface ProvisionOutcome {
  /** True when this call created the account (its cleanup then drops it). */
  created: boolean;
  detail: string;
}

/**
 * The static half of a connector: what the HTTP edge needs to refuse a bad action before anything runs.
 * No I/O, so the API process can validate without holding target credentials.
 */
export interface ConnectorGrammar {
  readonly type: string;
  validateIdentity(identity: IdentityRef): FieldProblem[];
  /** Parses one grant; returns a problem message for anything it cannot map to the target's grammar. */
  parseGrant(text: string): ParsedGrant | { problem: string };
}

/** The live half, held by the worker. Every operation is idempotent. */
export interface Connector {
  readonly name: string;
  readonly grammar: ConnectorGrammar;
  inspect(identity: IdentityRef): Promise<ObservedAccount>;
  /** Leaver: end sessions, lock, revoke every grant, drop. Already gone → `changed: false`. */
  revoke(identity: IdentityRef): Promise<RevokeOutcome>;
  /** Joiner: create if missing and grant. */
  provision(identity: IdentityRef, grants: string[]): Promise<ProvisionOutcome>;
  /** Expiry of a joiner: take back exactly these grants; drop the account if the joiner created it. */
  revokeGrants(identity: IdentityRef, grants: string[], dropAccount: boolean): Promise<RevokeOutcome>;
  close(): Promise<void>;
}

/** Compares a target's report with the desired state; a mismatch is named so a human can act on it. */
export function verifyAccount(desired: DesiredAccount, observed: ObservedAccount): Verification {
  const mismatches: string[] = [];
  if (desired.exists !== observed.exists) {
    mismatches.push(desired.exists ? 'account does not exist' : 'account still exists');
  }
  if (desired.exists && observed.exists) {
    const have = new Set(observed.grants);
    for (const g of desired.mustHave ?? []) if (!have.has(g)) mismatches.push(`missing grant: ${g}`);
    for (const g of desired.mustNotHave ?? []) if (have.has(g)) mismatches.push(`grant still present: ${g}`);
  }
  return { verified: mismatches.length === 0, mismatches };
}
