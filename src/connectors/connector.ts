import type { IdentityRef } from '../actions/identity-action';
import { ConnectorRefusal, FailureType } from './connector-errors';
import type { Secret } from './secret';

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
  /** Locked, disabled, deactivated (`active=false`, ACL `off`, …): the identity cannot authenticate. */
  locked?: boolean;
  /** Canonical grants, in the same text `ConnectorGrammar.parseGrant` produces. */
  grants: string[];
  activeSessions?: number;
  /** Other non-secret facts worth keeping in evidence (expiry, key ids and states, tags). */
  attributes?: Record<string, string | number | boolean | null | string[]>;
}

/** What a step wants the target to look like afterwards. */
export interface DesiredAccount {
  exists: boolean;
  /** When set, the observed `locked` flag must match (a disable-mode leaver wants `true`). */
  locked?: boolean;
  /** The identity must hold no grants at all (a disable-mode leaver). */
  noGrants?: boolean;
  /** Grants that must be present (joiner) — compared by canonical text. */
  mustHave?: string[];
  /** Grants that must be absent (expiry of a joiner's grants). */
  mustNotHave?: string[];
}

export interface Verification {
  verified: boolean;
  mismatches: string[];
}

/** What one primitive (ungrant, disable, remove) did to one identity. */
export interface ChangeOutcome {
  changed: boolean;
  detail: string;
  /** The identity was not there, so there was nothing to do. */
  absent?: boolean;
}

/** The outcome of a primitive that found nothing to act on: the identity does not exist. */
export function absent(what: string): ChangeOutcome {
  return { changed: false, absent: true, detail: `${what} was already absent` };
}

/** A connector instance's leaver policy (`policy.revokeMode` in its configuration). */
export type RevokeMode = 'delete' | 'disable';
export const REVOKE_MODES: readonly RevokeMode[] = ['delete', 'disable'];

/** What a delete-policy leaver leaves behind, and what any leaver of an identity that is already gone finds. */
export const GONE: Readonly<DesiredAccount> = Object.freeze({ exists: false });

/** What a disable-policy leaver leaves behind: the identity kept, unable to authenticate, holding nothing. */
export const DISABLED_STATE: Readonly<DesiredAccount> = Object.freeze({ exists: true, locked: true, noGrants: true });

/**
 * Identities a policy cannot be carried out on as written, declared by the connector's grammar: what a leaver leaves
 * instead, and why. A Vault lease cannot be suspended (disable revokes it), a certificate cannot be deleted (delete
 * revokes it). Declared rather than discovered, so the API, the registry and the contract suite all see it; the revoke
 * must leave exactly `leaves`. A deviation never lowers what a policy asks for: a state that still lets the identity
 * in (an IAM role whose trust policy still lets it be assumed) is not a deviation but an unverified revoke.
 */
export interface RevokeDeviation {
  mode: RevokeMode;
  /** Which identities, for people: e.g. "db/<role> (dynamic database credentials)". */
  identities: string;
  applies(identity: IdentityRef): boolean;
  leaves: Readonly<DesiredAccount>;
  reason: string;
}

/** One identity as discovery lists it: enough to match it against the inventory, nothing secret. */
export interface DiscoveredIdentity {
  name: string;
  /** MySQL's host part; absent elsewhere. */
  host?: string;
  type?: 'person' | 'service_account';
  locked?: boolean;
  /** Built-in or policy-protected: never reported as an orphan, never touched. */
  protected?: boolean;
  /**
   * Values of the attributes (LDAP attributes, IAM tags) the instance's ownership rules name, and only those, for
   * mapping the identity to an owner or workload. Matched, never stored.
   */
  attributes?: Record<string, string[]>;
}

export interface RotationResult {
  /** The new credential, for the secrets store only; it never leaves the activity that rotated it. */
  secret: Secret;
  /** Non-secret name of the new credential where the target has one (an IAM access key id). */
  credentialId?: string;
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
  /** The host an identity without one gets (MySQL: `%`); the inventory keys identities by it. */
  readonly defaultHost?: string;
  /**
   * What kind of identity a name stands for, in the inventory's words (`secret`, `certificate`, `workload_binding`,
   * `api_key`…), where the name says more than the action's person/service_account; undefined leaves that.
   */
  inventoryType?(name: string): string | undefined;
  /**
   * Whether a grant, in the canonical text inspect reports, is one the connector grants and takes back. Absent: the
   * canonical text parses to itself. A mover leaves every grant this refuses untouched.
   */
  manages?(canonical: string): boolean;
  /** Identities for which a revoke policy leaves something other than POLICY_LEAVES; none when absent. */
  readonly revokeDeviations?: readonly RevokeDeviation[];
  /** Required of (and only of) types that declare `secretSink`: checks a destination path, null when fine. */
  validateSecretPath?(path: string): string | null;
}

/** The live half, held by the worker. Every operation is idempotent. */
export interface Connector {
  readonly name: string;
  readonly grammar: ConnectorGrammar;
  inspect(identity: IdentityRef): Promise<ObservedAccount>;
  /** Creates the identity if it is missing and grants exactly these (additively); refused half-way, it drops what it created. */
  provision(identity: IdentityRef, grants: string[]): Promise<ProvisionOutcome>;
  /** Takes back exactly these grants; the identity and its other grants stay. */
  ungrant(identity: IdentityRef, grants: string[]): Promise<ChangeOutcome>;
  /**
   * Ends its sessions, locks it and takes back every grant, keeping the identity (or what the grammar's declared
   * deviation for `disable` says instead). `changed: false` when it already was so.
   */
  disable(identity: IdentityRef): Promise<ChangeOutcome>;
  /** Ends its sessions, takes back every grant and deletes it (or what the grammar's deviation for `delete` says). */
  remove(identity: IdentityRef): Promise<ChangeOutcome>;
  /** Every identity the gateway's credential can see, for the inventory. */
  discover(): Promise<DiscoveredIdentity[]>;
  close(): Promise<void>;
}

/**
 * Optional capabilities, declared by a connector type (ConnectorType.capabilities) rather than guessed from which
 * methods an object happens to have. The registry checks at load that the live connector implements exactly what its
 * type declares, and hands out a capability only when it is declared.
 */
export interface ConnectorCapabilities {
  /** Rotates credentials (CredentialRotator); two-phase targets hold several at once (TwoPhaseRotator). */
  readonly rotation?: 'one-phase' | 'two-phase';
  /** Stores rotated credentials for workloads (SecretSink); its grammar then checks destination paths. */
  readonly secretSink?: boolean;
  /** Says who a person's manager is (DirectoryReader): certification's reviewer rule `manager`. */
  readonly directory?: boolean;
}

/** Sets new credentials for existing identities of a system that holds credentials, and proves them. */
export interface CredentialRotator {
  /**
   * Sets a new credential for an existing identity. Old credentials stop working unless the target keeps them by
   * design, which `detail` then says (an IAM user's previous key is deactivated).
   */
  rotate(identity: IdentityRef): Promise<RotationResult>;
  /** True when `secret` authenticates as `identity` right now: the read-back that verifies a rotation. */
  authenticates(identity: IdentityRef, secret: Secret): Promise<boolean>;
}

/** A rotator for targets that hold several credentials at once (IAM access keys, certificates). */
export interface TwoPhaseRotator extends CredentialRotator {
  /**
   * Second phase: retires every credential of `identity` except `keep`. Called only after the new credential has been
   * delivered and verified, so a failed delivery never leaves the workload without a working credential. Idempotent.
   */
  retireOthers(identity: IdentityRef, keep: string): Promise<{ retired: number; detail: string }>;
}

/** The methods each capability stands for: what a live connector must have if, and only if, it declares it. */
const CAPABILITY_METHODS = {
  rotation: ['rotate', 'authenticates'],
  twoPhase: ['retireOthers'],
  secretSink: ['checkDestination', 'deliver', 'currentFingerprint'],
  directory: ['managerOf'],
} as const;

/**
 * Where a live connector and its type's declaration disagree, both ways: a declared capability it does not implement,
 * or one it implements without declaring it (which would otherwise sit unused, or be found by guesswork).
 */
export function capabilityProblems(declared: ConnectorCapabilities, live: object): string[] {
  const has = (m: string): boolean => typeof (live as Record<string, unknown>)[m] === 'function';
  const problems: string[] = [];
  const check = (what: string, isDeclared: boolean, methods: readonly string[]): void => {
    const present = methods.filter(has);
    if (isDeclared && present.length < methods.length) problems.push(`declares ${what} but lacks ${methods.filter((m) => !has(m)).join(', ')}`);
    if (!isDeclared && present.length > 0) problems.push(`implements ${present.join(', ')} without declaring ${what}`);
  };
  check('rotation', declared.rotation !== undefined, CAPABILITY_METHODS.rotation);
  check("two-phase rotation ('rotation': 'two-phase')", declared.rotation === 'two-phase', CAPABILITY_METHODS.twoPhase);
  check('secretSink', declared.secretSink === true, CAPABILITY_METHODS.secretSink);
  check('directory', declared.directory === true, CAPABILITY_METHODS.directory);
  return problems;
}

/** A directory of people: who a person's manager is, as a user of the same directory (null: none recorded). */
export interface DirectoryReader {
  managerOf(user: string): Promise<string | null>;
}

/**
 * Where rotated credentials go: the place the workload reads them (a KV v2 path in the Vault-API connector).
 * Only the fingerprint and version leave the store connector: it reads the value back to fingerprint it, and the
 * value goes no further.
 */
export interface SecretSink {
  /** Refuses (ConnectorRefusal) a destination the gateway may not write, before anything is rotated. */
  checkDestination(path: string): Promise<void>;
  deliver(path: string, secret: Secret, metadata: Record<string, string>): Promise<{ version: number }>;
  /** Fingerprint of what the store currently serves at `path`, computed where the value is read. */
  currentFingerprint(path: string): Promise<{ version: number; fingerprint: string } | null>;
}

/** Compares a target's report with the desired state; a mismatch is named so a human can act on it. */
export function verifyAccount(desired: DesiredAccount, observed: ObservedAccount): Verification {
  const mismatches: string[] = [];
  if (desired.exists !== observed.exists) {
    mismatches.push(desired.exists ? 'account does not exist' : 'account still exists');
  }
  if (desired.exists && observed.exists) {
    if (desired.locked !== undefined && desired.locked !== (observed.locked ?? false)) {
      mismatches.push(desired.locked ? 'account is not locked/disabled' : 'account is locked/disabled');
    }
    if (desired.noGrants && observed.grants.length > 0) mismatches.push(`grants still present: ${observed.grants.join(', ')}`);
    const have = new Set(observed.grants);
    for (const g of desired.mustHave ?? []) if (!have.has(g)) mismatches.push(`missing grant: ${g}`);
    for (const g of desired.mustNotHave ?? []) if (have.has(g)) mismatches.push(`grant still present: ${g}`);
  }
  return { verified: mismatches.length === 0, mismatches };
}

/** The live connector's re-check of an identity, before any I/O: the same grammar the API used, as a refusal. */
export function assertValidIdentity(grammar: ConnectorGrammar, identity: IdentityRef): void {
  const problems = grammar.validateIdentity(identity);
  if (problems.length > 0) {
    throw new ConnectorRefusal(FailureType.InvalidIdentity, problems.map((p) => `${p.path}: ${p.message}`).join('; '));
  }
}

/**
 * The live connector's re-check of a grant: it must parse, and arrive in exactly the canonical text the grammar
 * produced (what the API validated and what inspect reports), or it is refused before any I/O.
 */
export function checkedCanonicalGrant<G>(text: string, parse: (t: string) => G | { problem: string }, canonical: (g: G) => string): G {
  const parsed = parse(text);
  const shown = JSON.stringify(text.slice(0, 80));
  if (typeof parsed === 'object' && parsed !== null && 'problem' in parsed) {
    throw new ConnectorRefusal(FailureType.InvalidIdentity, `grant ${shown}: ${(parsed as { problem: string }).problem}`);
  }
  if (canonical(parsed as G) !== text) throw new ConnectorRefusal(FailureType.InvalidIdentity, `grant ${shown} is not in canonical form`);
  return parsed as G;
}
