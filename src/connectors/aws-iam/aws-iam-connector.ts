/**
 * AWS IAM users and roles: the classic long-lived non-human identities and their access keys.
 *
 * LEAST PRIVILEGE. The gateway's credential is an access key of one IAM user (`userName` in the config) whose only
 * permissions are the policy `leastPrivilegePolicy()` in ./aws-iam-policy.ts builds from the config (README shows
 * it rendered):
 *   - iam:GetUser, iam:GetRole, iam:ListUsers, iam:ListRoles on `*` (discovery; reading the caller itself);
 *   - on arn:aws:iam::<account>:user<path>* only: CreateUser, DeleteUser, TagUser, ListAccessKeys,
 *     CreateAccessKey, UpdateAccessKey, DeleteAccessKey, GetLoginProfile, DeleteLoginProfile, ListSSHPublicKeys,
 *     UpdateSSHPublicKey, DeleteSSHPublicKey, ListSigningCertificates, UpdateSigningCertificate,
 *     DeleteSigningCertificate, ListMFADevices, DeactivateMFADevice, ListAttachedUserPolicies, DetachUserPolicy,
 *     ListUserPolicies, DeleteUserPolicy, ListGroupsForUser;
 *   - on arn:aws:iam::<account>:role<path>* only: ListAttachedRolePolicies, DetachRolePolicy, ListRolePolicies,
 *     DeleteRolePolicy, ListInstanceProfilesForRole, DeleteRole;
 *   - AttachUserPolicy/AttachRolePolicy on those users and roles only when iam:PolicyARN is allow-listed, and
 *     GetPolicy on the allow-listed policy ARNs;
 *   - GetGroup, AddUserToGroup, RemoveUserFromGroup on the allow-listed groups only (none when none are listed);
 *   - RemoveRoleFromInstanceProfile on every instance profile.
 * Two exceptions to "only under the managed path", because IAM authorises them on another resource: group
 * membership changes are authorised on the group, so the credential can add or remove ANY user to or from an
 * allow-listed group; RemoveRoleFromInstanceProfile is authorised on the instance profile, so it can detach any role
 * from any instance profile. No iam:Put*Policy, CreateRole, CreatePolicy*, PassRole, Update*Policy (including
 * UpdateAssumeRolePolicy), CreateLoginProfile: the credential cannot grant itself or anyone more than the
 * allow-lists say.
 *
 * The connector also refuses, before any write, identities outside its managed path, protected identities, and
 * grants outside the allow-lists, so the same limits hold where the target cannot enforce them (moto ignores the
 * Resource and Condition parts of IAM policies for IAM's own actions).
 */
import {
  AddUserToGroupCommand,
  AttachRolePolicyCommand,
  AttachUserPolicyCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DeleteUserCommand,
  DeleteUserPolicyCommand,
  DetachRolePolicyCommand,
  DetachUserPolicyCommand,
  GetGroupCommand,
  GetPolicyCommand,
  GetUserCommand,
  ListRolesCommand,
  ListRoleTagsCommand,
  ListUsersCommand,
  ListUserTagsCommand,
} from '@aws-sdk/client-iam';
import type { IdentityRef } from '../../actions/identity-action';
import { absent, type ChangeOutcome, type Connector, type DiscoveredIdentity, type ObservedAccount, type ProvisionOutcome, type RotationResult, type TwoPhaseRotator } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import type { Secret } from '../secret';
import { AwsIamAccessKeys } from './aws-iam-access-keys';
import { IamCalls, iamClientFor } from './aws-iam-calls';
import { AwsIamGrammar, type IamEntity, type IamGrant, parseGrantText, parseIdentityName, roleIdentityName } from './aws-iam-grammar';
import { AwsIamRoles, type RoleState } from './aws-iam-roles';
import { AwsIamUsers, type UserState } from './aws-iam-users';

export { awsFailure } from './aws-iam-calls';

export interface AwsIamConnectorOptions {
  name: string;
  /** Absent: AWS's own IAM endpoint for the region's partition. */
  endpoint?: string;
  region: string;
  /** Users and roles the gateway manages live under this IAM path, e.g. `/changegate/`. */
  path: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The IAM user the credential belongs to: never touched. */
  userName: string;
  protectedAccounts: string[];
  allowedPolicyArns: string[];
  allowedGroups: string[];
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** How long to wait for IAM's eventual consistency (a brand-new key not yet accepted or listed). Default 10 s. */
  consistencyWaitMs?: number;
  /**
   * Tag keys the instance's ownership rules read (policy.ownership `attribute`). With any, discovery lists each
   * user's and role's tags (iam:ListUserTags, iam:ListRoleTags) and keeps only these keys' values.
   */
  ownershipTags?: string[];
}

type EntityState = UserState | RoleState;

/**
 * Users (aws-iam-users.ts), roles (aws-iam-roles.ts) and access keys (aws-iam-access-keys.ts) share one IAM client
 * and one way of calling it (aws-iam-calls.ts); this class validates identities and grants, grants and strips
 * policies and groups, and composes the revoke.
 */
export class AwsIamConnector extends IamCalls implements Connector, TwoPhaseRotator {
  readonly grammar: AwsIamGrammar;
  private readonly users: AwsIamUsers;
  private readonly roles: AwsIamRoles;
  private readonly keys: AwsIamAccessKeys;

  constructor(name: string, private readonly connectorOpts: AwsIamConnectorOptions) {
    const client = iamClientFor(connectorOpts, connectorOpts.accessKeyId, connectorOpts.secretAccessKey);
    super(name, connectorOpts, client);
    this.grammar = new AwsIamGrammar({
      protectedAccounts: connectorOpts.protectedAccounts,
      allowedPolicyArns: connectorOpts.allowedPolicyArns,
      allowedGroups: connectorOpts.allowedGroups,
    });
    this.users = new AwsIamUsers(name, connectorOpts, client);
    this.roles = new AwsIamRoles(name, connectorOpts, client);
    this.keys = new AwsIamAccessKeys(name, connectorOpts, client, this.users);
  }

  async inspect(identity: IdentityRef): Promise<ObservedAccount> {
    return observe(await this.read(this.entity(identity)));
  }

  /**
   * Every policy and group a grant names is checked to exist before anything is written, so the usual refusal
   * (NoSuchEntity) never follows a CreateUser. A user this call created is deleted again if anything after
   * CreateUser fails (AccessDenied, a policy AWS will not attach, a timeout), and the error is rethrown: a refusal
   * leaves nothing behind, and a retry after a transient fault creates the user afresh and reports `created: true`.
   */
  async provision(identity: IdentityRef, grants: string[]): Promise<ProvisionOutcome> {
    const entity = this.entity(identity);
    const wanted = uniqueGrants(grants.map((g) => this.checkedGrant(g)));
    if (entity.kind === 'role' && wanted.some((g) => g.kind === 'group')) {
      throw new ConnectorRefusal(FailureType.InvalidIdentity, `${this.name}: a role cannot join an IAM group; grant it policies only`);
    }
    const state = await this.read(entity);
    if (state === null && entity.kind === 'role') {
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.name}: role '${entity.name}' does not exist; the gateway does not create roles (a role needs a trust policy, which a ticket does not carry)`,
      );
    }
    const missing = wanted.filter((g) => state === null || !holds(state, g));
    for (const grant of missing) await this.requireGrantTarget(grant);
    if (state !== null) return { created: false, detail: await this.applyGrants(state, missing, wanted.length) };
    if (!(await this.users.createUser(entity.name))) {
      // A concurrent or earlier attempt created it: not ours to roll back, nor to report as created.
      const existing = await this.read(entity);
      if (existing === null) throw new Error(`${this.name}: user '${entity.name}' already existed but cannot be read yet`);
      return { created: false, detail: await this.applyGrants(existing, wanted.filter((g) => !holds(existing, g)), wanted.length) };
    }
    // Not read back: IAM is eventually consistent, and the user was created empty a moment ago.
    const attempted: IamGrant[] = [];
    try {
      for (const grant of missing) {
        attempted.push(grant);
        await this.grant({ kind: 'user', name: entity.name }, grant, true);
      }
    } catch (err) {
      throw await this.users.rollBackUser(entity.name, attempted, err);
    }
    return {
      created: true,
      detail: `created user '${entity.name}' under ${this.opts.path} (no credential yet: rotate issues its first access key); ${missing.length} of ${wanted.length} grant(s) newly applied`,
    };
  }

  async disable(identity: IdentityRef): Promise<ChangeOutcome> {
    const entity = this.entity(identity);
    const state = await this.read(entity);
    if (state === null) return absent(`${entity.kind} '${entity.name}'`);
    const observed = observe(state);
    if (observed.locked && observed.grants.length === 0) {
      return { changed: false, detail: `${entity.kind} '${entity.name}' was already locked with no grants` };
    }
    if (state.kind === 'role' && observed.grants.length === 0) {
      return { changed: false, detail: `role '${entity.name}' holds no grants; ${STILL_ASSUMABLE(state)}` };
    }
    const done = await this.strip(state, false);
    // A role is disabled only when no one can assume it, and only its trust policy says who can. Replacing that
    // needs UpdateAssumeRolePolicy, which the gateway is not given (aws-iam-policy.ts): with it the gateway could
    // make any managed role trust itself. So the read-back finds the role unlocked until an administrator does it,
    // and the step is not verified; the detail says what is left, for the human reading the evidence.
    const kept = state.kind === 'user' ? 'kept' : `kept; ${STILL_ASSUMABLE(state)}`;
    return { changed: true, detail: `${done}; ${entity.kind} '${entity.name}' ${kept}` };
  }

  async remove(identity: IdentityRef): Promise<ChangeOutcome> {
    const entity = this.entity(identity);
    const state = await this.read(entity);
    if (state === null) return absent(`${entity.kind} '${entity.name}'`);
    const done = await this.strip(state, true);
    if (state.kind === 'user') await this.gone('DeleteUser', () => this.client.send(new DeleteUserCommand({ UserName: state.name })));
    else await this.gone('DeleteRole', () => this.client.send(new DeleteRoleCommand({ RoleName: state.name })));
    return { changed: true, detail: `${done}; deleted ${entity.kind} '${entity.name}'` };
  }

  async ungrant(identity: IdentityRef, grants: string[]): Promise<ChangeOutcome> {
    const entity = this.entity(identity);
    const taking = grants.map((g) => this.checkedGrant(g));
    const state = await this.read(entity);
    if (state === null) return absent(`${entity.kind} '${entity.name}'`);
    let taken = 0;
    for (const grant of taking) {
      if (grant.kind === 'policy' && state.policies.includes(grant.arn)) {
        await this.detach(state, grant.arn);
        taken++;
      }
      if (grant.kind === 'group' && state.kind === 'user') {
        const member = state.groups.find((g) => g.toLowerCase() === grant.name.toLowerCase());
        if (member !== undefined) {
          await this.users.leaveGroup(state.name, member);
          taken++;
        }
      }
    }
    return { changed: taken > 0, detail: `took back ${taken} of ${taking.length} grant(s) from ${entity.kind} '${entity.name}'` };
  }

  /** The values of the tags the ownership rules name, for one user or role; undefined when no rule reads tags or none is set. */
  private async ownershipTagsOf(kind: 'user' | 'role', name: string): Promise<Record<string, string[]> | undefined> {
    const wanted = new Set((this.connectorOpts.ownershipTags ?? []).map((t) => t.toLowerCase()));
    if (wanted.size === 0 || name === '') return undefined;
    const tags: Array<{ Key?: string; Value?: string }> = [];
    let marker: string | undefined;
    do {
      const page = kind === 'user'
        ? await this.call('ListUserTags', () => this.client.send(new ListUserTagsCommand({ UserName: name, Marker: marker })))
        : await this.call('ListRoleTags', () => this.client.send(new ListRoleTagsCommand({ RoleName: name, Marker: marker })));
      tags.push(...(page.Tags ?? []));
      marker = page.IsTruncated ? page.Marker : undefined;
    } while (marker);
    const kept = tags.filter((t) => t.Key !== undefined && wanted.has(t.Key.toLowerCase()));
    return kept.length > 0 ? Object.fromEntries(kept.map((t) => [t.Key as string, [t.Value ?? '']])) : undefined;
  }

  async discover(): Promise<DiscoveredIdentity[]> {
    const self = await this.call('GetUser', () => this.client.send(new GetUserCommand({})));
    const selfName = (self.User?.UserName ?? this.connectorOpts.userName).toLowerCase();
    const out: DiscoveredIdentity[] = [];
    let marker: string | undefined;
    do {
      const page = await this.call('ListUsers', () => this.client.send(new ListUsersCommand({ Marker: marker })));
      for (const u of page.Users ?? []) {
        const name = u.UserName ?? '';
        const isProtected = !this.managedPath(u.Path) || this.grammar.isProtected(name) || name.toLowerCase() === selfName || name.toLowerCase() === this.connectorOpts.userName.toLowerCase();
        const attributes = await this.ownershipTagsOf('user', name);
        out.push({ name, ...(isProtected ? { protected: true } : {}), ...(attributes ? { attributes } : {}) });
      }
      marker = page.IsTruncated ? page.Marker : undefined;
    } while (marker);
    do {
      const page = await this.call('ListRoles', () => this.client.send(new ListRolesCommand({ Marker: marker })));
      for (const r of page.Roles ?? []) {
        const name = roleIdentityName(r.RoleName ?? '');
        const isProtected = !this.managedPath(r.Path) || this.grammar.isProtected(name);
        const attributes = await this.ownershipTagsOf('role', r.RoleName ?? '');
        out.push({ name, type: 'service_account', ...(isProtected ? { protected: true } : {}), ...(attributes ? { attributes } : {}) });
      }
      marker = page.IsTruncated ? page.Marker : undefined;
    } while (marker);
    return out;
  }

  /** First phase of a rotation: a new access key; see AwsIamAccessKeys.rotate. */
  async rotate(identity: IdentityRef): Promise<RotationResult> {
    return this.keys.rotate(this.userEntity(identity, 'rotate'));
  }

  /** Second phase: every other active key deactivated; see AwsIamAccessKeys.retireOthers. */
  async retireOthers(identity: IdentityRef, keep: string): Promise<{ retired: number; detail: string }> {
    return this.keys.retireOthers(this.userEntity(identity, 'retire access keys of'), keep);
  }

  /** Whether a key pair works for the user now; see AwsIamAccessKeys.authenticates. */
  async authenticates(identity: IdentityRef, secret: Secret): Promise<boolean> {
    return this.keys.authenticates(this.userEntity(identity, 'authenticate'), secret);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private async applyGrants(state: EntityState, grants: IamGrant[], asked: number): Promise<string> {
    for (const grant of grants) await this.grant(state, grant);
    return `found existing ${state.kind} '${state.name}'; ${grants.length} of ${asked} grant(s) newly applied`;
  }

  /** `justCreated`: the user was created a moment ago, so NoSuchEntity may only mean IAM has not propagated it yet. */
  private async grant(entity: IamEntity, grant: IamGrant, justCreated = false): Promise<void> {
    const send = justCreated ? this.callFresh.bind(this) : this.call.bind(this);
    if (grant.kind === 'group') {
      await send('AddUserToGroup', () => this.client.send(new AddUserToGroupCommand({ UserName: entity.name, GroupName: grant.name })));
    } else if (entity.kind === 'user') {
      await send('AttachUserPolicy', () => this.client.send(new AttachUserPolicyCommand({ UserName: entity.name, PolicyArn: grant.arn })));
    } else {
      await send('AttachRolePolicy', () => this.client.send(new AttachRolePolicyCommand({ RoleName: entity.name, PolicyArn: grant.arn })));
    }
  }

  /** The policy or group a grant names exists (NoSuchEntity is AWS's refusal, with its message as cause). */
  private async requireGrantTarget(grant: IamGrant): Promise<void> {
    if (grant.kind === 'policy') await this.call('GetPolicy', () => this.client.send(new GetPolicyCommand({ PolicyArn: grant.arn })));
    else await this.call('GetGroup', () => this.client.send(new GetGroupCommand({ GroupName: grant.name, MaxItems: 1 })));
  }

  /** Takes every grant and credential away; `deleting` (delete mode) also deletes credentials rather than deactivating them. */
  private async strip(state: EntityState, deleting: boolean): Promise<string> {
    const steps: string[] = [];
    // Credentials first, so nothing can act as the user while its grants are being taken away.
    if (state.kind === 'user') steps.push(...(await this.users.stripCredentials(state)));
    for (const arn of state.policies) await this.detach(state, arn);
    steps.push(`detached ${state.policies.length} policy(ies)`);
    for (const p of state.inline) {
      await this.gone(state.kind === 'user' ? 'DeleteUserPolicy' : 'DeleteRolePolicy', () =>
        state.kind === 'user'
          ? this.client.send(new DeleteUserPolicyCommand({ UserName: state.name, PolicyName: p }))
          : this.client.send(new DeleteRolePolicyCommand({ RoleName: state.name, PolicyName: p })),
      );
    }
    if (state.inline.length) steps.push(`deleted ${state.inline.length} inline policy(ies)`);
    if (deleting && state.kind === 'user') steps.push(...(await this.users.deleteCredentials(state)));
    if (deleting && state.kind === 'role') steps.push(...(await this.roles.leaveInstanceProfiles(state)));
    return steps.join(', ');
  }

  /** The identity's whole state, or null when it does not exist. Outside the managed path: refused. */
  private async read(entity: IamEntity): Promise<EntityState | null> {
    return entity.kind === 'user' ? this.users.read(entity) : this.roles.read(entity);
  }

  private async detach(state: EntityState, arn: string): Promise<void> {
    if (state.kind === 'user') await this.gone('DetachUserPolicy', () => this.client.send(new DetachUserPolicyCommand({ UserName: state.name, PolicyArn: arn })));
    else await this.gone('DetachRolePolicy', () => this.client.send(new DetachRolePolicyCommand({ RoleName: state.name, PolicyArn: arn })));
  }

  private entity(identity: IdentityRef): IamEntity {
    const problems = this.grammar.validateIdentity(identity);
    const entity = parseIdentityName(identity.name);
    if (problems.length > 0 || entity === null) {
      throw new ConnectorRefusal(FailureType.InvalidIdentity, problems.map((p) => `${p.path}: ${p.message}`).join('; '));
    }
    if (entity.kind === 'user' && entity.name.toLowerCase() === this.connectorOpts.userName.toLowerCase()) {
      throw new ConnectorRefusal(FailureType.InvalidIdentity, `identity.name: '${identity.name}' is the gateway's own user`);
    }
    return entity;
  }

  private userEntity(identity: IdentityRef, what: string): { kind: 'user'; name: string } {
    const entity = this.entity(identity);
    if (entity.kind !== 'user') {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: cannot ${what} role '${entity.name}': a role has no long-lived credential (its sessions come from sts:AssumeRole)`);
    }
    return entity;
  }

  private checkedGrant(text: string): IamGrant {
    const parsed = this.grammar.parseGrant(text);
    if ('problem' in parsed) throw new ConnectorRefusal(FailureType.InvalidIdentity, `grant ${JSON.stringify(text.slice(0, 80))}: ${parsed.problem}`);
    const grant = parseGrantText(parsed.canonical[0] ?? '');
    if ('problem' in grant) throw new ConnectorRefusal(FailureType.InvalidIdentity, `grant ${JSON.stringify(text.slice(0, 80))}: ${grant.problem}`);
    return grant;
  }

}

/** The same grant asked for twice is applied once. */
function uniqueGrants(grants: IamGrant[]): IamGrant[] {
  const seen = new Set<string>();
  return grants.filter((g) => {
    const key = g.kind === 'policy' ? `policy=${g.arn}` : `group=${g.name.toLowerCase()}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function holds(state: EntityState, grant: IamGrant): boolean {
  if (grant.kind === 'policy') return state.policies.includes(grant.arn);
  return state.kind === 'user' && state.groups.some((g) => g.toLowerCase() === grant.name.toLowerCase());
}

const STILL_ASSUMABLE = (state: RoleState): string =>
  state.assumableBy.length === 0
    ? 'its trust policy lets no one assume it'
    : `its trust policy still lets ${state.assumableBy.join(', ')} assume it (and use resource-based policies naming it): an administrator must replace the trust policy to disable it`;

/**
 * What inspect reports. Grants: `policy=<ARN>` and `group=<name>` (the grammar's canonical text) and
 * `inline=<name>` for inline policies, which no ticket can ask for but which a leaver must lose. A user is locked
 * when it has no active access key, no console password, and no active SSH public key or signing certificate.
 * Only stable facts: no dates, no last-used times.
 */
function observe(state: EntityState | null): ObservedAccount {
  if (state === null) return { exists: false, grants: [] };
  const grants = [
    ...state.policies.map((a) => `policy=${a}`),
    ...(state.kind === 'user' ? state.groups.map((g) => `group=${g}`) : []),
    ...state.inline.map((p) => `inline=${p}`),
  ].sort();
  if (state.kind === 'role') {
    // A role has no credential of its own: it is locked when its trust policy lets no one assume it.
    return {
      exists: true,
      locked: state.assumableBy.length === 0,
      grants,
      attributes: { kind: 'role', path: state.path, instanceProfiles: [...state.instanceProfiles].sort(), assumableBy: state.assumableBy },
    };
  }
  return {
    exists: true,
    locked: !state.keys.some((k) => k.Status === 'Active') && !state.loginProfile && !state.otherCredentials.some((c) => c.active),
    grants,
    attributes: {
      kind: 'user',
      path: state.path,
      accessKeys: state.keys.map((k) => `${k.AccessKeyId}:${k.Status}`).sort(),
      loginProfile: state.loginProfile,
      otherCredentials: state.otherCredentials.map((c) => `${c.kind}:${c.id}:${c.active ? 'Active' : 'Inactive'}`).sort(),
      mfaDevices: state.mfaDevices.length,
    },
  };
}

export function createAwsIamConnector(opts: AwsIamConnectorOptions): AwsIamConnector {
  return new AwsIamConnector(opts.name, opts);
}
