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
 *   - AttachUserPolicy/AttachRolePolicy on those users and roles only when iam:PolicyARN is allow-listed;
 *   - AddUserToGroup on the allow-listed groups; RemoveUserFromGroup on any group; RemoveRoleFromInstanceProfile.
 * No iam:Put*Policy, CreateRole, CreatePolicy*, PassRole, Update*Policy, CreateLoginProfile: the credential cannot
 * grant itself or anyone more than the allow-lists say.
 *
 * The connector also refuses, before any write, identities outside its managed path, protected identities, and
 * grants outside the allow-lists, so the same limits hold where the target cannot enforce them (moto ignores the
 * Resource and Condition parts of IAM policies for IAM's own actions).
 */
import {
  type AccessKeyMetadata,
  AddUserToGroupCommand,
  AttachRolePolicyCommand,
  AttachUserPolicyCommand,
  CreateAccessKeyCommand,
  CreateUserCommand,
  DeactivateMFADeviceCommand,
  DeleteAccessKeyCommand,
  DeleteLoginProfileCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DeleteSSHPublicKeyCommand,
  DeleteSigningCertificateCommand,
  DeleteUserCommand,
  DeleteUserPolicyCommand,
  DetachRolePolicyCommand,
  DetachUserPolicyCommand,
  GetLoginProfileCommand,
  GetRoleCommand,
  GetUserCommand,
  IAMClient,
  ListAccessKeysCommand,
  ListAttachedRolePoliciesCommand,
  ListAttachedUserPoliciesCommand,
  ListGroupsForUserCommand,
  ListInstanceProfilesForRoleCommand,
  ListMFADevicesCommand,
  ListRolePoliciesCommand,
  ListRolesCommand,
  ListSSHPublicKeysCommand,
  ListSigningCertificatesCommand,
  ListUserPoliciesCommand,
  ListUsersCommand,
  RemoveRoleFromInstanceProfileCommand,
  RemoveUserFromGroupCommand,
  UpdateAccessKeyCommand,
  UpdateSSHPublicKeyCommand,
  UpdateSigningCertificateCommand,
} from '@aws-sdk/client-iam';
import type { IdentityRef } from '../../actions/identity-action';
import type { Connector, DesiredAccount, DiscoveredIdentity, ObservedAccount, ProvisionOutcome, RevokeOutcome, RotationResult } from '../connector';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import { Secret } from '../secret';
import { AwsIamGrammar, type IamEntity, type IamGrant, parseGrantText, parseIdentityName, roleIdentityName } from './aws-iam-grammar';

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
  revokeMode?: 'delete' | 'disable';
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
}

/** Error names AWS (and the SDK) use for "try again later"; 5xx and 429 are transient whatever their name. */
const TRANSIENT_NAMES = new Set([
  'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException', 'ServiceUnavailable',
  'ServiceUnavailableException', 'ServiceFailure', 'ServiceFailureException', 'InternalFailure', 'InternalError',
  'RequestTimeout', 'RequestTimeoutException', 'TimeoutError', 'ConcurrentModification', 'ConcurrentModificationException',
]);
/** The request never authenticated: the key id is unknown (or, on AWS, inactive) or the secret does not match. */
const NOT_AUTHENTICATED = new Set([
  'InvalidClientTokenId', 'SignatureDoesNotMatch', 'IncompleteSignature', 'InvalidAccessKeyId', 'UnrecognizedClientException', 'AuthFailure',
]);
const ACCESS_KEY_ID = /^[A-Z0-9]{16,128}$/;
const MANAGED_TAG = { Key: 'managed-by', Value: 'changegate' };

/** AWS's words for one failed call, without anything from the request. */
interface AwsFailure {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** A credential other than an access key or password: an SSH public key (CodeCommit) or an X.509 signing certificate. */
interface OtherCredential {
  kind: 'ssh-key' | 'signing-certificate';
  id: string;
  active: boolean;
}

interface UserState {
  kind: 'user';
  name: string;
  path: string;
  keys: AccessKeyMetadata[];
  loginProfile: boolean;
  otherCredentials: OtherCredential[];
  mfaDevices: string[];
  policies: string[];
  groups: string[];
  inline: string[];
}

interface RoleState {
  kind: 'role';
  name: string;
  path: string;
  policies: string[];
  inline: string[];
  instanceProfiles: string[];
}

type EntityState = UserState | RoleState;

export class AwsIamConnector implements Connector {
  readonly grammar: AwsIamGrammar;
  private readonly client: IAMClient;
  private readonly revokeMode: 'delete' | 'disable';

  constructor(readonly name: string, private readonly opts: AwsIamConnectorOptions) {
    this.revokeMode = opts.revokeMode ?? 'delete';
    this.grammar = new AwsIamGrammar({
      protectedAccounts: opts.protectedAccounts,
      allowedPolicyArns: opts.allowedPolicyArns,
      allowedGroups: opts.allowedGroups,
    });
    this.client = this.iamClient(opts.accessKeyId, opts.secretAccessKey);
  }

  async inspect(identity: IdentityRef): Promise<ObservedAccount> {
    return observe(await this.read(this.entity(identity)));
  }

  async provision(identity: IdentityRef, grants: string[]): Promise<ProvisionOutcome> {
    const entity = this.entity(identity);
    const wanted = grants.map((g) => this.checkedGrant(g));
    if (entity.kind === 'role' && wanted.some((g) => g.kind === 'group')) {
      throw new ConnectorRefusal(FailureType.InvalidIdentity, `${this.name}: a role cannot join an IAM group; grant it policies only`);
    }
    let state = await this.read(entity);
    let created = false;
    if (state === null) {
      if (entity.kind === 'role') {
        throw new ConnectorRefusal(
          FailureType.TargetRefused,
          `${this.name}: role '${entity.name}' does not exist; the gateway does not create roles (a role needs a trust policy, which a ticket does not carry)`,
        );
      }
      created = await this.createUser(entity.name);
      // Not read back: IAM is eventually consistent, and a transient "not found" here would make the retry see an
      // existing user and report `created: false`, so the joiner's cleanup would never drop it.
      state = created ? emptyUser(entity.name, this.opts.path) : await this.read(entity);
      if (state === null) throw new Error(`${this.name}: user '${entity.name}' already existed but cannot be read yet`);
    }
    let added = 0;
    for (const grant of wanted) {
      if (grant.kind === 'policy' && !state.policies.includes(grant.arn)) {
        await this.call(entity.kind === 'user' ? 'AttachUserPolicy' : 'AttachRolePolicy', () =>
          entity.kind === 'user'
            ? this.client.send(new AttachUserPolicyCommand({ UserName: entity.name, PolicyArn: grant.arn }))
            : this.client.send(new AttachRolePolicyCommand({ RoleName: entity.name, PolicyArn: grant.arn })),
        );
        added++;
      }
      if (grant.kind === 'group' && state.kind === 'user' && !state.groups.some((g) => g.toLowerCase() === grant.name.toLowerCase())) {
        await this.call('AddUserToGroup', () => this.client.send(new AddUserToGroupCommand({ UserName: entity.name, GroupName: grant.name })));
        added++;
      }
    }
    return {
      created,
      detail: `${created ? 'created' : 'found existing'} ${entity.kind} '${entity.name}'${created ? ` under ${this.opts.path} (no credential yet: rotate issues its first access key)` : ''}; ${added} of ${wanted.length} grant(s) newly applied`,
    };
  }

  async revoke(identity: IdentityRef): Promise<RevokeOutcome> {
    const entity = this.entity(identity);
    const state = await this.read(entity);
    if (this.revokeMode === 'disable') {
      const expected: DesiredAccount = entity.kind === 'user' ? { exists: true, locked: true, noGrants: true } : { exists: true, noGrants: true };
      if (state === null) {
        throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: ${entity.kind} '${entity.name}' does not exist, so it cannot be left disabled`);
      }
      const observed = observe(state);
      if ((entity.kind === 'role' || observed.locked) && observed.grants.length === 0) {
        return { changed: false, detail: `${entity.kind} '${entity.name}' was already ${entity.kind === 'user' ? 'locked with' : 'left with'} no grants`, expected };
      }
      const done = await this.strip(state, false);
      const kept = entity.kind === 'user' ? 'kept (policy: disable)' : 'kept (policy: disable; a role has no credential of its own to lock, and with no policies it can do nothing)';
      return { changed: true, detail: `${done}; ${entity.kind} '${entity.name}' ${kept}`, expected };
    }
    if (state === null) return { changed: false, detail: `${entity.kind} '${entity.name}' was already absent` };
    const done = await this.strip(state, true);
    if (state.kind === 'user') await this.gone('DeleteUser', () => this.client.send(new DeleteUserCommand({ UserName: state.name })));
    else await this.gone('DeleteRole', () => this.client.send(new DeleteRoleCommand({ RoleName: state.name })));
    return { changed: true, detail: `${done}; deleted ${entity.kind} '${entity.name}'` };
  }

  async revokeGrants(identity: IdentityRef, grants: string[], dropAccount: boolean): Promise<RevokeOutcome> {
    const entity = this.entity(identity);
    const taking = grants.map((g) => this.checkedGrant(g));
    const state = await this.read(entity);
    if (state === null) return { changed: false, detail: `${entity.kind} '${entity.name}' was already absent` };
    if (dropAccount) return this.revoke(identity);
    let taken = 0;
    for (const grant of taking) {
      if (grant.kind === 'policy' && state.policies.includes(grant.arn)) {
        await this.detach(state, grant.arn);
        taken++;
      }
      if (grant.kind === 'group' && state.kind === 'user') {
        const member = state.groups.find((g) => g.toLowerCase() === grant.name.toLowerCase());
        if (member !== undefined) {
          await this.leaveGroup(state.name, member);
          taken++;
        }
      }
    }
    return { changed: taken > 0, detail: `took back ${taken} of ${taking.length} grant(s) from ${entity.kind} '${entity.name}'` };
  }

  async discover(): Promise<DiscoveredIdentity[]> {
    const self = await this.call('GetUser', () => this.client.send(new GetUserCommand({})));
    const selfName = (self.User?.UserName ?? this.opts.userName).toLowerCase();
    const out: DiscoveredIdentity[] = [];
    let marker: string | undefined;
    do {
      const page = await this.call('ListUsers', () => this.client.send(new ListUsersCommand({ Marker: marker })));
      for (const u of page.Users ?? []) {
        const name = u.UserName ?? '';
        const isProtected = !this.managedPath(u.Path) || this.grammar.isProtected(name) || name.toLowerCase() === selfName || name.toLowerCase() === this.opts.userName.toLowerCase();
        out.push({ name, ...(isProtected ? { protected: true } : {}) });
      }
      marker = page.IsTruncated ? page.Marker : undefined;
    } while (marker);
    do {
      const page = await this.call('ListRoles', () => this.client.send(new ListRolesCommand({ Marker: marker })));
      for (const r of page.Roles ?? []) {
        const name = roleIdentityName(r.RoleName ?? '');
        const isProtected = !this.managedPath(r.Path) || this.grammar.isProtected(name);
        out.push({ name, type: 'service_account', ...(isProtected ? { protected: true } : {}) });
      }
      marker = page.IsTruncated ? page.Marker : undefined;
    } while (marker);
    return out;
  }

  /**
   * Issues a new access key and deactivates the previous ones (kept, inactive, so an operator can roll back until
   * the next rotation). AWS allows two keys per user: to make room, an inactive key goes first; if both are active,
   * the newer one goes, because a retry after a half-finished rotation leaves exactly that (a key whose secret was
   * never delivered), while the older one is the key the workload holds. The secret is JSON:
   * `{"accessKeyId":"AKIA…","secretAccessKey":"…"}`.
   */
  async rotate(identity: IdentityRef): Promise<RotationResult> {
    const entity = this.userEntity(identity, 'rotate');
    const state = await this.read(entity);
    if (state === null || state.kind !== 'user') {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: user '${entity.name}' does not exist, so it has no access key to rotate`);
    }
    const keys = [...state.keys].sort((a, b) => (a.CreateDate?.getTime() ?? 0) - (b.CreateDate?.getTime() ?? 0));
    const deleted: string[] = [];
    while (keys.length >= 2) {
      const inactive = keys.findIndex((k) => k.Status !== 'Active');
      const victim = keys.splice(inactive >= 0 ? inactive : keys.length - 1, 1)[0]?.AccessKeyId;
      await this.gone('DeleteAccessKey', () => this.client.send(new DeleteAccessKeyCommand({ UserName: entity.name, AccessKeyId: victim })));
      deleted.push(victim ?? '?');
    }
    const made = await this.call('CreateAccessKey', () => this.client.send(new CreateAccessKeyCommand({ UserName: entity.name })));
    const accessKeyId = made.AccessKey?.AccessKeyId;
    const secretAccessKey = made.AccessKey?.SecretAccessKey;
    if (!accessKeyId || !secretAccessKey) throw new Error(`${this.name}: CreateAccessKey for '${entity.name}' returned no key`);
    const secret = new Secret(JSON.stringify({ accessKeyId, secretAccessKey }));
    const deactivated: string[] = [];
    for (const k of keys) {
      if (k.Status !== 'Active' || !k.AccessKeyId) continue;
      await this.call('UpdateAccessKey', () => this.client.send(new UpdateAccessKeyCommand({ UserName: entity.name, AccessKeyId: k.AccessKeyId, Status: 'Inactive' })));
      deactivated.push(k.AccessKeyId);
    }
    return {
      secret,
      credentialId: accessKeyId,
      detail:
        `created access key ${accessKeyId} for '${entity.name}'` +
        `; deactivated ${deactivated.length ? deactivated.join(', ') : 'no previous key'} (kept inactive for rollback until the next rotation)` +
        (deleted.length ? `; deleted ${deleted.join(', ')} to stay within two keys` : ''),
    };
  }

  /**
   * The key authenticates when AWS accepts its signature (the call succeeds, or is refused only for lack of
   * permission, which AWS decides after authenticating) and the user's key list shows it Active. The status check
   * matters where the target does not refuse inactive keys itself: moto checks signatures but not key status.
   */
  async authenticates(identity: IdentityRef, secret: Secret): Promise<boolean> {
    const entity = this.userEntity(identity, 'authenticate');
    const pair = parseKeyPair(secret);
    if (pair === null) return false;
    const probe = this.iamClient(pair.accessKeyId, pair.secretAccessKey);
    try {
      const me = await probe.send(new GetUserCommand({}));
      if (me.User?.UserName !== entity.name) return false;
    } catch (raw) {
      const err = raw as AwsFailure;
      if (NOT_AUTHENTICATED.has(err.name ?? '')) return false;
      if (err.name !== 'AccessDenied' && err.name !== 'AccessDeniedException') throw this.failure('GetUser (as the new key)', raw);
    } finally {
      probe.destroy();
    }
    const keys = await this.listAccessKeys(entity.name);
    return keys.some((k) => k.AccessKeyId === pair.accessKeyId && k.Status === 'Active');
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** Takes every grant and credential away; `deleting` (delete mode) also deletes credentials rather than deactivating them. */
  private async strip(state: EntityState, deleting: boolean): Promise<string> {
    const steps: string[] = [];
    if (state.kind === 'user') {
      // Credentials first, so nothing can act as the user while its grants are being taken away.
      const active = state.keys.filter((k) => k.Status === 'Active');
      for (const k of active) {
        await this.gone('UpdateAccessKey', () => this.client.send(new UpdateAccessKeyCommand({ UserName: state.name, AccessKeyId: k.AccessKeyId, Status: 'Inactive' })));
      }
      steps.push(`deactivated ${active.length} access key(s)`);
      const other = state.otherCredentials.filter((c) => c.active);
      for (const c of other) await this.setOtherCredential(state.name, c, 'deactivate');
      if (other.length) steps.push(`deactivated ${other.length} SSH key(s)/signing certificate(s)`);
      if (state.loginProfile) {
        await this.gone('DeleteLoginProfile', () => this.client.send(new DeleteLoginProfileCommand({ UserName: state.name })));
        steps.push('deleted the console password');
      }
      for (const g of state.groups) await this.leaveGroup(state.name, g);
      if (state.groups.length) steps.push(`removed from ${state.groups.length} group(s)`);
    }
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
    if (deleting && state.kind === 'user') {
      for (const k of state.keys) await this.gone('DeleteAccessKey', () => this.client.send(new DeleteAccessKeyCommand({ UserName: state.name, AccessKeyId: k.AccessKeyId })));
      steps.push(`deleted ${state.keys.length} access key(s)`);
      for (const c of state.otherCredentials) await this.setOtherCredential(state.name, c, 'delete');
      if (state.otherCredentials.length) steps.push(`deleted ${state.otherCredentials.length} SSH key(s)/signing certificate(s)`);
      // DeleteUser refuses while an MFA device is assigned; a virtual device itself stays in the account, unassigned.
      for (const serial of state.mfaDevices) {
        await this.gone('DeactivateMFADevice', () => this.client.send(new DeactivateMFADeviceCommand({ UserName: state.name, SerialNumber: serial })));
      }
      if (state.mfaDevices.length) steps.push(`deactivated ${state.mfaDevices.length} MFA device(s)`);
    }
    if (deleting && state.kind === 'role') {
      for (const ip of state.instanceProfiles) {
        await this.gone('RemoveRoleFromInstanceProfile', () => this.client.send(new RemoveRoleFromInstanceProfileCommand({ RoleName: state.name, InstanceProfileName: ip })));
      }
      if (state.instanceProfiles.length) steps.push(`removed from ${state.instanceProfiles.length} instance profile(s)`);
    }
    return steps.join(', ');
  }

  private async setOtherCredential(user: string, c: OtherCredential, action: 'deactivate' | 'delete'): Promise<void> {
    if (c.kind === 'ssh-key') {
      await this.gone(action === 'delete' ? 'DeleteSSHPublicKey' : 'UpdateSSHPublicKey', () =>
        action === 'delete'
          ? this.client.send(new DeleteSSHPublicKeyCommand({ UserName: user, SSHPublicKeyId: c.id }))
          : this.client.send(new UpdateSSHPublicKeyCommand({ UserName: user, SSHPublicKeyId: c.id, Status: 'Inactive' })),
      );
      return;
    }
    await this.gone(action === 'delete' ? 'DeleteSigningCertificate' : 'UpdateSigningCertificate', () =>
      action === 'delete'
        ? this.client.send(new DeleteSigningCertificateCommand({ UserName: user, CertificateId: c.id }))
        : this.client.send(new UpdateSigningCertificateCommand({ UserName: user, CertificateId: c.id, Status: 'Inactive' })),
    );
  }

  private async detach(state: EntityState, arn: string): Promise<void> {
    if (state.kind === 'user') await this.gone('DetachUserPolicy', () => this.client.send(new DetachUserPolicyCommand({ UserName: state.name, PolicyArn: arn })));
    else await this.gone('DetachRolePolicy', () => this.client.send(new DetachRolePolicyCommand({ RoleName: state.name, PolicyArn: arn })));
  }

  private async leaveGroup(user: string, group: string): Promise<void> {
    await this.gone('RemoveUserFromGroup', () => this.client.send(new RemoveUserFromGroupCommand({ UserName: user, GroupName: group })));
  }

  /** True when this call created the user; false when a concurrent attempt got there first. */
  private async createUser(name: string): Promise<boolean> {
    try {
      await this.client.send(new CreateUserCommand({ UserName: name, Path: this.opts.path, Tags: [MANAGED_TAG] }));
      return true;
    } catch (raw) {
      if ((raw as AwsFailure).name === 'EntityAlreadyExistsException') return false;
      throw this.failure('CreateUser', raw);
    }
  }

  /** The identity's whole state, or null when it does not exist. Outside the managed path: refused. */
  private async read(entity: IamEntity): Promise<EntityState | null> {
    if (entity.kind === 'user') {
      const got = await this.maybe('GetUser', () => this.client.send(new GetUserCommand({ UserName: entity.name })));
      if (got === null) return null;
      this.requireManaged(entity, got.User?.Path);
      const [keys, loginProfile, policies, groups, inline, sshKeys, certificates, mfaDevices] = await Promise.all([
        this.listAccessKeys(entity.name),
        this.maybe('GetLoginProfile', () => this.client.send(new GetLoginProfileCommand({ UserName: entity.name }))).then((p) => p !== null),
        this.pages('ListAttachedUserPolicies', (Marker) => this.client.send(new ListAttachedUserPoliciesCommand({ UserName: entity.name, Marker })), (p) => (p.AttachedPolicies ?? []).map((a) => a.PolicyArn ?? '')),
        this.pages('ListGroupsForUser', (Marker) => this.client.send(new ListGroupsForUserCommand({ UserName: entity.name, Marker })), (p) => (p.Groups ?? []).map((g) => g.GroupName ?? '')),
        this.pages('ListUserPolicies', (Marker) => this.client.send(new ListUserPoliciesCommand({ UserName: entity.name, Marker })), (p) => p.PolicyNames ?? []),
        this.pages('ListSSHPublicKeys', (Marker) => this.client.send(new ListSSHPublicKeysCommand({ UserName: entity.name, Marker })), (p) =>
          (p.SSHPublicKeys ?? []).map((k): OtherCredential => ({ kind: 'ssh-key', id: k.SSHPublicKeyId ?? '', active: k.Status === 'Active' })),
        ),
        this.pages('ListSigningCertificates', (Marker) => this.client.send(new ListSigningCertificatesCommand({ UserName: entity.name, Marker })), (p) =>
          (p.Certificates ?? []).map((c): OtherCredential => ({ kind: 'signing-certificate', id: c.CertificateId ?? '', active: c.Status === 'Active' })),
        ),
        this.pages('ListMFADevices', (Marker) => this.client.send(new ListMFADevicesCommand({ UserName: entity.name, Marker })), (p) => (p.MFADevices ?? []).map((d) => d.SerialNumber ?? '')),
      ]);
      const otherCredentials = [...sshKeys, ...certificates];
      return { kind: 'user', name: entity.name, path: got.User?.Path ?? '/', keys, loginProfile, otherCredentials, mfaDevices, policies, groups, inline };
    }
    const got = await this.maybe('GetRole', () => this.client.send(new GetRoleCommand({ RoleName: entity.name })));
    if (got === null) return null;
    this.requireManaged(entity, got.Role?.Path);
    const [policies, inline, instanceProfiles] = await Promise.all([
      this.pages('ListAttachedRolePolicies', (Marker) => this.client.send(new ListAttachedRolePoliciesCommand({ RoleName: entity.name, Marker })), (p) => (p.AttachedPolicies ?? []).map((a) => a.PolicyArn ?? '')),
      this.pages('ListRolePolicies', (Marker) => this.client.send(new ListRolePoliciesCommand({ RoleName: entity.name, Marker })), (p) => p.PolicyNames ?? []),
      this.pages('ListInstanceProfilesForRole', (Marker) => this.client.send(new ListInstanceProfilesForRoleCommand({ RoleName: entity.name, Marker })), (p) => (p.InstanceProfiles ?? []).map((i) => i.InstanceProfileName ?? '')),
    ]);
    return { kind: 'role', name: entity.name, path: got.Role?.Path ?? '/', policies, inline, instanceProfiles };
  }

  private async listAccessKeys(user: string): Promise<AccessKeyMetadata[]> {
    return this.pages('ListAccessKeys', (Marker) => this.client.send(new ListAccessKeysCommand({ UserName: user, Marker })), (p) => p.AccessKeyMetadata ?? []);
  }

  private managedPath(path: string | undefined): boolean {
    return (path ?? '/').startsWith(this.opts.path);
  }

  private requireManaged(entity: IamEntity, path: string | undefined): void {
    if (!this.managedPath(path)) {
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.name}: ${entity.kind} '${entity.name}' has path '${path ?? '/'}', outside the managed path ${this.opts.path}; the gateway does not touch it`,
      );
    }
  }

  private entity(identity: IdentityRef): IamEntity {
    const problems = this.grammar.validateIdentity(identity);
    const entity = parseIdentityName(identity.name);
    if (problems.length > 0 || entity === null) {
      throw new ConnectorRefusal(FailureType.InvalidIdentity, problems.map((p) => `${p.path}: ${p.message}`).join('; '));
    }
    if (entity.kind === 'user' && entity.name.toLowerCase() === this.opts.userName.toLowerCase()) {
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

  private iamClient(accessKeyId: string, secretAccessKey: string): IAMClient {
    return new IAMClient({
      region: this.opts.region,
      ...(this.opts.endpoint ? { endpoint: this.opts.endpoint } : {}),
      credentials: { accessKeyId, secretAccessKey },
      // Temporal owns retries: one attempt per activity try, with deadlines short enough to fail over quickly.
      maxAttempts: 1,
      requestHandler: { connectionTimeout: this.opts.connectTimeoutMs ?? 5_000, requestTimeout: this.opts.requestTimeoutMs ?? 15_000 },
    });
  }

  private async pages<P extends { IsTruncated?: boolean; Marker?: string }, T>(
    op: string,
    fetch: (marker: string | undefined) => Promise<P>,
    items: (page: P) => T[],
  ): Promise<T[]> {
    const out: T[] = [];
    let marker: string | undefined;
    do {
      const page = await this.call(op, () => fetch(marker));
      out.push(...items(page));
      marker = page.IsTruncated ? page.Marker : undefined;
    } while (marker);
    return out;
  }

  private async call<T>(op: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (raw) {
      throw this.failure(op, raw);
    }
  }

  /** Like `call`, but "no such entity" is an answer (null), not an error. */
  private async maybe<T>(op: string, run: () => Promise<T>): Promise<T | null> {
    try {
      return await run();
    } catch (raw) {
      if (isNoSuchEntity(raw)) return null;
      throw this.failure(op, raw);
    }
  }

  /** A removal whose target is already gone has done its job: idempotent revokes. */
  private async gone(op: string, run: () => Promise<unknown>): Promise<void> {
    await this.maybe(op, run);
  }

  /**
   * Rebuilds an SDK error from AWS's code and message only (AWS never echoes a secret key, but the SDK error also
   * carries the raw response; nothing of the request travels on). No HTTP status: the request did not complete.
   */
  private failure(op: string, raw: unknown): Error {
    const err = raw as AwsFailure;
    const code = (err.name && err.name !== 'Error' ? err.name : err.code) ?? 'Error';
    const status = err.$metadata?.httpStatusCode;
    const message = err.message ?? 'unknown error';
    const cause = Object.assign(new Error(message), { code, status });
    const text = `${this.name}: ${op} failed: ${code}: ${message}`;
    if (status === undefined || status >= 500 || status === 429 || TRANSIENT_NAMES.has(code)) {
      return Object.assign(new Error(text, { cause }), { transient: true });
    }
    return new ConnectorRefusal(FailureType.TargetRefused, text, { cause });
  }
}

function emptyUser(name: string, path: string): UserState {
  return { kind: 'user', name, path, keys: [], loginProfile: false, otherCredentials: [], mfaDevices: [], policies: [], groups: [], inline: [] };
}

function isNoSuchEntity(raw: unknown): boolean {
  const err = raw as AwsFailure & { Code?: string };
  return err.name === 'NoSuchEntityException' || err.name === 'NoSuchEntity' || err.Code === 'NoSuchEntity';
}

function parseKeyPair(secret: Secret): { accessKeyId: string; secretAccessKey: string } | null {
  let value: unknown;
  try {
    value = JSON.parse(secret.reveal());
  } catch {
    return null;
  }
  const pair = value as { accessKeyId?: unknown; secretAccessKey?: unknown } | null;
  if (typeof pair?.accessKeyId !== 'string' || typeof pair.secretAccessKey !== 'string') return null;
  if (!ACCESS_KEY_ID.test(pair.accessKeyId) || pair.secretAccessKey.length === 0) return null;
  return { accessKeyId: pair.accessKeyId, secretAccessKey: pair.secretAccessKey };
}

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
    return { exists: true, grants, attributes: { kind: 'role', path: state.path, instanceProfiles: [...state.instanceProfiles].sort() } };
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
