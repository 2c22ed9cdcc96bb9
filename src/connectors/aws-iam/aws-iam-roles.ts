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

const ASSUME = /^(?:sts:AssumeRole(?:WithSAML|WithWebIdentity)?|sts:\*|\*)$/i;
type TrustStatement = { Effect?: string; Principal?: unknown; Action?: string | string[]; NotAction?: unknown; Condition?: unknown };

/**
 * Who a role's trust policy lets assume it: every principal of an Allow statement for an sts:AssumeRole action,
 * unless a Deny statement for every principal, without a condition, takes those actions back. A role no one can assume is what a disabled role is: it has no credential of its own, its sessions come only from
 * here. A document that cannot be read is read as assumable by someone: never called locked on a guess.
 */
export function assumableBy(document: string | undefined): string[] {
  if (!document) return [];
  let doc: { Statement?: TrustStatement | TrustStatement[] };
  try {
    // IAM answers the document URL-encoded; moto sends it as it was given.
    doc = JSON.parse(document.trimStart().startsWith('{') ? document : decodeURIComponent(document)) as typeof doc;
  } catch {
    return ['unreadable trust policy'];
  }
  const statements = Array.isArray(doc.Statement) ? doc.Statement : doc.Statement ? [doc.Statement] : [];
  // NotAction reads as every action in an Allow and as none in a Deny: either way, never locked on a guess.
  const actions = (s: TrustStatement): string[] => (s.NotAction !== undefined ? (s.Effect === 'Allow' ? ['*'] : []) : Array.isArray(s.Action) ? s.Action : s.Action ? [s.Action] : []);
  const everyone = (p: unknown): boolean => p === '*' || (typeof p === 'object' && p !== null && (p as { AWS?: unknown }).AWS === '*');
  // Actions an unconditional Deny to every principal takes back, whoever an Allow names.
  const denied = statements.filter((s) => s.Effect === 'Deny' && s.Condition === undefined && everyone(s.Principal)).flatMap((s) => actions(s).map((a) => a.toLowerCase()));
  const takenBack = (a: string): boolean => denied.includes('*') || denied.includes('sts:*') || denied.includes(a.toLowerCase());
  const out = new Set<string>();
  for (const s of statements) {
    if (s.Effect !== 'Allow' || !actions(s).some((a) => ASSUME.test(a) && !takenBack(a))) continue;
    if (typeof s.Principal === 'string') out.add(`AWS:${s.Principal}`);
    else if (typeof s.Principal === 'object' && s.Principal !== null) {
      for (const [kind, value] of Object.entries(s.Principal)) for (const v of Array.isArray(value) ? value : [value]) out.add(`${kind}:${String(v)}`);
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
