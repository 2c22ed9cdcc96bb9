/**
 * IAM roles for the aws-iam connector: their state (policies, inline policies, instance profiles, and who their trust
 * policy lets assume them) and leaving profiles.
 */
import {
  GetRoleCommand,
  ListAttachedRolePoliciesCommand,
  ListInstanceProfilesForRoleCommand,
  ListRolePoliciesCommand,
  RemoveRoleFromInstanceProfileCommand,
} from '@aws-sdk/client-iam';
import { IamCalls } from './aws-iam-calls';

export interface RoleState {
  kind: 'role';
  name: string;
  path: string;
  policies: string[];
  inline: string[];
  instanceProfiles: string[];
  /** Who the trust policy lets call sts:AssumeRole*: `<Service|AWS|Federated>:<value>`; empty when no one can. */
  assumableBy: string[];
}

/** The actions that assume a role. A trust policy names them with IAM globs: `*` and `?`, case-insensitive. */
const ASSUME_ACTIONS = ['sts:AssumeRole', 'sts:AssumeRoleWithSAML', 'sts:AssumeRoleWithWebIdentity'];
type TrustStatement = { Effect?: string; Principal?: unknown; Action?: unknown; NotAction?: unknown; Condition?: unknown };

/** An IAM action pattern as a test: `*` any run of characters, `?` any one, case-insensitive, the whole name. */
function actionGlob(pattern: string): (action: string) => boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'is');
  return (action) => re.test(action);
}

/**
 * Who a role's trust policy lets assume it: every principal of an Allow statement whose Action matches an assume
 * action, unless an unconditional Deny covering that principal takes each such action back. A Deny covers a principal
 * when it names `"*"`, or `"*"` for that principal's type (`{"AWS": "*"}` covers AWS principals only: IAM documents it
 * as every AWS identity, not services or federated callers). A role no one can assume is what a disabled role is: it
 * has no credential of its own, its sessions come only from here. A document that cannot be read is read as
 * assumable by someone: never called locked on a guess.
 */
export function assumableBy(document: string | undefined): string[] {
  if (!document) return ['unreadable trust policy'];
  let doc: unknown;
  try {
    // IAM answers the document URL-encoded; moto sends it as it was given.
    doc = JSON.parse(document.trimStart().startsWith('{') ? document : decodeURIComponent(document));
  } catch {
    return ['unreadable trust policy'];
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return ['unreadable trust policy'];
  const raw = (doc as { Statement?: unknown }).Statement;
  const list: unknown[] = Array.isArray(raw) ? raw : raw !== undefined ? [raw] : [];
  if (list.some((s) => typeof s !== 'object' || s === null || Array.isArray(s))) return ['unreadable trust policy'];
  const statements = list as TrustStatement[];
  // The assume actions a statement names. NotAction, or an Action that is not a string, reads as every action in an
  // Allow and as none in a Deny: either way, never locked on a guess.
  const names = (s: TrustStatement): string[] => {
    const given: unknown[] = Array.isArray(s.Action) ? s.Action : s.Action !== undefined ? [s.Action] : [];
    if (s.NotAction !== undefined || given.some((a) => typeof a !== 'string')) return s.Effect === 'Allow' ? ASSUME_ACTIONS : [];
    const patterns = (given as string[]).map(actionGlob);
    return ASSUME_ACTIONS.filter((a) => patterns.some((matches) => matches(a)));
  };
  // The principal types an unconditional Deny covers: '*' for a Deny to "*", else each type it names with "*".
  const coveredTypes = (p: unknown): string[] => {
    if (p === '*') return ['*'];
    if (typeof p !== 'object' || p === null) return [];
    return Object.entries(p).filter(([, v]) => v === '*' || (Array.isArray(v) && v.includes('*'))).map(([kind]) => kind);
  };
  const denials = statements
    .filter((s) => s.Effect === 'Deny' && s.Condition === undefined)
    .map((s) => ({ types: coveredTypes(s.Principal), actions: names(s) }))
    .filter((d) => d.types.length > 0);
  // Principal "*" in an Allow is everyone, anonymous callers too: only a Deny to "*" takes it back.
  const takenBack = (kind: string, action: string): boolean => denials.some((d) => (d.types.includes('*') || d.types.includes(kind)) && d.actions.includes(action));
  const out = new Set<string>();
  for (const s of statements) {
    if (s.Effect !== 'Allow') continue;
    const allowed = names(s);
    if (allowed.length === 0) continue;
    const lets = (kind: string): boolean => allowed.some((a) => !takenBack(kind, a));
    if (typeof s.Principal === 'string') {
      if (lets(s.Principal === '*' ? '' : 'AWS')) out.add(`AWS:${s.Principal}`);
    } else if (typeof s.Principal === 'object' && s.Principal !== null) {
      for (const [kind, value] of Object.entries(s.Principal)) {
        if (!lets(kind)) continue;
        for (const v of Array.isArray(value) ? value : [value]) out.add(`${kind}:${String(v)}`);
      }
    } else out.add('unreadable principal');
  }
  return [...out].sort();
}

export class AwsIamRoles extends IamCalls {
  /** The role's whole state, or null when it does not exist. Outside the managed path: refused. */
  async read(entity: { kind: 'role'; name: string }): Promise<RoleState | null> {
    const got = await this.maybe('GetRole', () => this.client.send(new GetRoleCommand({ RoleName: entity.name })));
    if (got === null) return null;
    this.requireManaged(entity, got.Role?.Path);
    const [policies, inline, instanceProfiles] = await Promise.all([
      this.pages('ListAttachedRolePolicies', (Marker) => this.client.send(new ListAttachedRolePoliciesCommand({ RoleName: entity.name, Marker })), (p) => (p.AttachedPolicies ?? []).map((a) => a.PolicyArn ?? '')),
      this.pages('ListRolePolicies', (Marker) => this.client.send(new ListRolePoliciesCommand({ RoleName: entity.name, Marker })), (p) => p.PolicyNames ?? []),
      this.pages('ListInstanceProfilesForRole', (Marker) => this.client.send(new ListInstanceProfilesForRoleCommand({ RoleName: entity.name, Marker })), (p) => (p.InstanceProfiles ?? []).map((i) => i.InstanceProfileName ?? '')),
    ]);
    return { kind: 'role', name: entity.name, path: got.Role?.Path ?? '/', policies, inline, instanceProfiles, assumableBy: assumableBy(got.Role?.AssumeRolePolicyDocument) };
  }

  /** Delete mode: a role leaves its instance profiles before DeleteRole. */
  async leaveInstanceProfiles(state: RoleState): Promise<string[]> {
    const steps: string[] = [];
    for (const ip of state.instanceProfiles) {
      await this.gone('RemoveRoleFromInstanceProfile', () => this.client.send(new RemoveRoleFromInstanceProfileCommand({ RoleName: state.name, InstanceProfileName: ip })));
    }
    if (state.instanceProfiles.length) steps.push(`removed from ${state.instanceProfiles.length} instance profile(s)`);
    return steps;
  }
}
