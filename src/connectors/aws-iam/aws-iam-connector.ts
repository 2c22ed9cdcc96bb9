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
  GetGroupCommand,
  GetLoginProfileCommand,
  GetPolicyCommand,
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
import { setTimeout as sleep } from 'node:timers/promises';
import type { IdentityRef } from '../../actions/identity-action';
import { alreadyAbsent, type Connector, type TwoPhaseRotator, type DiscoveredIdentity, type ObservedAccount, type ProvisionOutcome, revokeTarget, type RevokeMode, type RevokeOutcome, type RotationResult } from '../connector';
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
  revokeMode?: RevokeMode;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** How long to wait for IAM's eventual consistency (a brand-new key not yet accepted or listed). Default 10 s. */
  consistencyWaitMs?: number;
}

/**
 * Error names AWS (and the SDK) use for "try again later"; 5xx and 429 are transient whatever their name.
 * EntityTemporarilyUnmodifiable (409) and ConcurrentModification are IAM saying another change to the same entity
 * is still in flight: the same request succeeds later.
 */
const TRANSIENT_NAMES = new Set([
  'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException', 'ServiceUnavailable',
  'ServiceUnavailableException', 'ServiceFailure', 'ServiceFailureException', 'InternalFailure', 'InternalError',
  'RequestTimeout', 'RequestTimeoutException', 'TimeoutError', 'ConcurrentModification', 'ConcurrentModificationException',
  'EntityTemporarilyUnmodifiable', 'EntityTemporarilyUnmodifiableException',
]);
/** The key id is unknown to AWS's authentication: a wrong or deleted key, an inactive one on AWS, or one too new. */
const UNKNOWN_KEY = new Set(['InvalidClientTokenId', 'InvalidAccessKeyId', 'UnrecognizedClientException', 'AuthFailure']);
/** The key id is known but the signature is wrong: the secret does not belong to it. */
const BAD_SIGNATURE = new Set(['SignatureDoesNotMatch', 'IncompleteSignature']);
const ACCESS_KEY_ID = /^[A-Z0-9]{16,128}$/;
/** "User: arn:aws:iam::123456789012:user/some/path/alice is not authorized to perform: …": the caller's user name. */
const CALLER_IN_ACCESS_DENIED = /^User: arn:[\w-]+:iam::\d{12}:user\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,64}) is not authorized/;
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

export class AwsIamConnector implements Connector, TwoPhaseRotator {
  readonly grammar: AwsIamGrammar;
  private readonly client: IAMClient;
  private readonly revokeMode: RevokeMode;

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
    if (!(await this.createUser(entity.name))) {
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
      throw await this.rollBackUser(entity.name, attempted, err);
    }
    return {
      created: true,
      detail: `created user '${entity.name}' under ${this.opts.path} (no credential yet: rotate issues its first access key); ${missing.length} of ${wanted.length} grant(s) newly applied`,
    };
  }

  async revoke(identity: IdentityRef): Promise<RevokeOutcome> {
    const entity = this.entity(identity);
    const state = await this.read(entity);
    // Gone is done under either policy: nothing to delete or disable, and no access left (a refusal here blocked
    // closure over an identity that no longer exists).
    if (state === null) return alreadyAbsent(`${entity.kind} '${entity.name}'`);
    const expected = revokeTarget(this.grammar, identity, this.revokeMode).leaves;
    if (this.revokeMode === 'disable') {
      const observed = observe(state);
      if ((entity.kind === 'role' || observed.locked) && observed.grants.length === 0) {
        return { changed: false, detail: `${entity.kind} '${entity.name}' was already ${entity.kind === 'user' ? 'locked with' : 'left with'} no grants`, expected };
      }
      const done = await this.strip(state, false);
      // A stripped role keeps its trust policy: whoever it trusts can still assume it, and such a session can still
      // use whatever resource-based policies (bucket, key, queue policies) grant the role's ARN; sessions issued
      // before stay valid until they expire. Replacing the trust policy needs UpdateAssumeRolePolicy, which the
      // gateway is not given (see aws-iam-policy.ts): the detail says so, for the human reading the evidence.
      const kept =
        entity.kind === 'user'
          ? 'kept (policy: disable)'
          : 'kept (policy: disable); its trust policy is unchanged, so it can still be assumed and used through resource-based policies naming it, and existing sessions last until they expire: an administrator must replace the trust policy to disable it fully';
      return { changed: true, detail: `${done}; ${entity.kind} '${entity.name}' ${kept}`, expected };
    }
    const done = await this.strip(state, true);
    if (state.kind === 'user') await this.gone('DeleteUser', () => this.client.send(new DeleteUserCommand({ UserName: state.name })));
    else await this.gone('DeleteRole', () => this.client.send(new DeleteRoleCommand({ RoleName: state.name })));
    return { changed: true, detail: `${done}; deleted ${entity.kind} '${entity.name}'`, expected };
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
   * First phase of a rotation: issues a new access key and changes nothing else the workload relies on. The
   * previous keys stay Active until `retireOthers` runs, which the rotation activity calls only once the new key
   * has been delivered to the secrets store and verified; a failed delivery thus leaves the workload's key working.
   *
   * AWS allows two keys per user. To make room, an inactive key goes first (the rollback key of the previous
   * rotation). If both keys are active, the newer one goes: a rotation whose delivery failed leaves exactly that, a
   * key whose secret never reached the store, next to the older key the workload holds. It goes only while another
   * key stays active, so this never deletes a user's last working key. The rule guesses when both active keys were
   * made outside the gateway, or when a delivery succeeded and only its verification failed (the store then serves
   * the newer key; this rotation replaces it there straight away).
   * The secret is JSON: `{"accessKeyId":"AKIA…","secretAccessKey":"…"}`.
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
      const at = inactive >= 0 ? inactive : keys.length - 1;
      const victim = keys[at]!;
      if (victim.Status === 'Active' && !keys.some((k, i) => i !== at && k.Status === 'Active')) {
        throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: making room for a new key of '${entity.name}' would delete its only active key ${victim.AccessKeyId}`);
      }
      keys.splice(at, 1);
      await this.gone('DeleteAccessKey', () => this.client.send(new DeleteAccessKeyCommand({ UserName: entity.name, AccessKeyId: victim.AccessKeyId })));
      deleted.push(`${victim.AccessKeyId ?? '?'} (${victim.Status === 'Active' ? 'active, newer: never delivered' : 'inactive'})`);
    }
    const made = await this.call('CreateAccessKey', () => this.client.send(new CreateAccessKeyCommand({ UserName: entity.name })));
    const accessKeyId = made.AccessKey?.AccessKeyId;
    const secretAccessKey = made.AccessKey?.SecretAccessKey;
    if (!accessKeyId || !secretAccessKey) throw new Error(`${this.name}: CreateAccessKey for '${entity.name}' returned no key`);
    const secret = new Secret(JSON.stringify({ accessKeyId, secretAccessKey }));
    const previous = keys.filter((k) => k.Status === 'Active').map((k) => k.AccessKeyId ?? '?');
    return {
      secret,
      credentialId: accessKeyId,
      detail:
        `created access key ${accessKeyId} for '${entity.name}'` +
        (deleted.length ? `; deleted ${deleted.join(', ')} to stay within two keys` : '') +
        (previous.length ? `; ${previous.join(', ')} stays active until the new key is delivered and verified` : '; no previous active key'),
    };
  }

  /**
   * Second phase of a rotation: deactivates every active access key of the user except `keep` (kept, inactive, for
   * rollback until the next rotation deletes it). Refuses, changing nothing, unless `keep` is listed Active for this
   * user: retiring the others would otherwise leave the workload without a working key.
   */
  async retireOthers(identity: IdentityRef, keep: string): Promise<{ retired: number; detail: string }> {
    const entity = this.userEntity(identity, 'retire access keys of');
    if (!ACCESS_KEY_ID.test(keep)) {
      throw new ConnectorRefusal(FailureType.InvalidIdentity, `${this.name}: ${JSON.stringify(keep.slice(0, 40))} is not an access key id; refusing to retire every key of '${entity.name}'`);
    }
    const state = await this.read(entity);
    if (state === null || state.kind !== 'user') {
      throw new ConnectorRefusal(FailureType.TargetRefused, `${this.name}: user '${entity.name}' does not exist, so it has no access key to retire`);
    }
    let keys = state.keys;
    if (!keys.some((k) => k.AccessKeyId === keep)) {
      // A key created a moment ago may not be listed yet: IAM is eventually consistent.
      const listed = await this.settle(async () => {
        const now = await this.listAccessKeys(entity.name);
        return now.some((k) => k.AccessKeyId === keep) ? now : undefined;
      });
      keys = listed ?? keys;
    }
    const kept = keys.find((k) => k.AccessKeyId === keep);
    if (kept?.Status !== 'Active') {
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.name}: access key ${keep} is ${kept ? 'not active' : 'not listed'} for '${entity.name}'; refusing to retire its other keys, which would leave it without a working key`,
      );
    }
    const retiring = keys.filter((k) => k.AccessKeyId !== keep && k.Status === 'Active');
    for (const k of retiring) {
      await this.gone('UpdateAccessKey', () => this.client.send(new UpdateAccessKeyCommand({ UserName: entity.name, AccessKeyId: k.AccessKeyId, Status: 'Inactive' })));
    }
    const ids = retiring.map((k) => k.AccessKeyId ?? '?');
    return {
      retired: retiring.length,
      detail: ids.length
        ? `deactivated ${ids.join(', ')} of '${entity.name}' (kept inactive for rollback until the next rotation); ${keep} stays active`
        : `no active access key of '${entity.name}' other than ${keep}`,
    };
  }

  /**
   * The key authenticates when AWS accepts its signature (the call succeeds, or is refused only for lack of
   * permission, which AWS decides after authenticating) and the user's key list shows it Active. The status check
   * matters where the target does not refuse inactive keys itself: moto checks signatures but not key status.
   *
   * IAM is eventually consistent: a key created a moment ago can be listed Active while AWS still answers
   * InvalidClientTokenId for it, or be accepted before it is listed. Either is retried for up to `consistencyWaitMs`,
   * then reported as a transient error, never as `false`, which would fail the rotation for good.
   */
  async authenticates(identity: IdentityRef, secret: Secret): Promise<boolean> {
    const entity = this.userEntity(identity, 'authenticate');
    const pair = parseKeyPair(secret);
    if (pair === null) return false;
    const verdict = await this.settle(async () => {
      const signed = await this.signIn(pair);
      if (signed === 'bad-signature' || (typeof signed === 'object' && signed.user !== entity.name)) return false;
      const listed = (await this.listAccessKeys(entity.name)).find((k) => k.AccessKeyId === pair.accessKeyId);
      if (signed === 'unknown-key') return listed?.Status === 'Active' ? undefined : false;
      // Accepted as this user, or by a user AWS did not name: a key not listed yet is one created a moment ago.
      return listed === undefined ? undefined : listed.Status === 'Active';
    });
    if (verdict === undefined) {
      throw Object.assign(
        new Error(`${this.name}: access key ${pair.accessKeyId} of '${entity.name}' is not yet both listed Active and accepted by AWS (IAM is eventually consistent); try again`),
        { transient: true },
      );
    }
    return verdict;
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /**
   * Signs GetUser with the key pair: whose key it is, or AWS's verdict when it will not say. A key without
   * iam:GetUser on itself (most workloads' keys) is still authenticated: AWS names the caller in its AccessDenied.
   */
  private async signIn(pair: { accessKeyId: string; secretAccessKey: string }): Promise<{ user: string } | 'denied' | 'unknown-key' | 'bad-signature'> {
    const probe = this.iamClient(pair.accessKeyId, pair.secretAccessKey);
    try {
      const me = await probe.send(new GetUserCommand({}));
      return { user: me.User?.UserName ?? '' };
    } catch (raw) {
      const name = (raw as AwsFailure).name ?? '';
      if (UNKNOWN_KEY.has(name)) return 'unknown-key';
      if (BAD_SIGNATURE.has(name)) return 'bad-signature';
      if (name === 'AccessDenied' || name === 'AccessDeniedException') {
        const caller = CALLER_IN_ACCESS_DENIED.exec((raw as AwsFailure).message ?? '');
        return caller?.[1] ? { user: caller[1] } : 'denied';
      }
      throw this.failure('GetUser (as the key being checked)', raw);
    } finally {
      probe.destroy();
    }
  }

  /** Re-runs `probe` until it answers (anything but undefined) or `consistencyWaitMs` has passed; then undefined. */
  private async settle<T>(probe: () => Promise<T | undefined>): Promise<T | undefined> {
    const deadline = Date.now() + (this.opts.consistencyWaitMs ?? 10_000);
    for (let delay = 200; ; delay = Math.min(delay * 2, 2_000)) {
      const answer = await probe();
      if (answer !== undefined) return answer;
      if (Date.now() + delay > deadline) return undefined;
      await sleep(delay);
    }
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

  /** Like `call`, but NoSuchEntity is retried until `consistencyWaitMs` has passed: the entity may be brand new. */
  private async callFresh<T>(op: string, run: () => Promise<T>): Promise<T> {
    let last: unknown;
    const done = await this.settle(async () => {
      try {
        return { value: await run() };
      } catch (raw) {
        if (!isNoSuchEntity(raw)) throw this.failure(op, raw);
        last = raw;
        return undefined;
      }
    });
    if (done === undefined) throw this.failure(op, last);
    return done.value;
  }

  /** The policy or group a grant names exists (NoSuchEntity is AWS's refusal, with its message as cause). */
  private async requireGrantTarget(grant: IamGrant): Promise<void> {
    if (grant.kind === 'policy') await this.call('GetPolicy', () => this.client.send(new GetPolicyCommand({ PolicyArn: grant.arn })));
    else await this.call('GetGroup', () => this.client.send(new GetGroupCommand({ GroupName: grant.name, MaxItems: 1 })));
  }

  /**
   * Deletes a user this provision created, undoing every grant it attempted (the failing one may have been applied
   * before its answer was lost); returns `err` with what happened added to its message, type and cause unchanged.
   */
  private async rollBackUser(user: string, attempted: IamGrant[], err: unknown): Promise<unknown> {
    let note: string;
    try {
      for (const grant of [...attempted].reverse()) {
        if (grant.kind === 'group') await this.leaveGroup(user, grant.name);
        else await this.gone('DetachUserPolicy', () => this.client.send(new DetachUserPolicyCommand({ UserName: user, PolicyArn: grant.arn })));
      }
      // NoSuchEntity right after CreateUser more likely means "not propagated yet" than "gone": ask again for a while.
      const deleted = await this.settle(async () => ((await this.maybe('DeleteUser', () => this.client.send(new DeleteUserCommand({ UserName: user })))) === null ? undefined : true));
      note = deleted
        ? `; rolled back: deleted user '${user}', which this provision had created`
        : `; rolled back: user '${user}', which this provision had created, is not found any more`;
    } catch (undo) {
      note = `; rollback failed, so user '${user}' is left behind: ${undo instanceof Error ? undo.message : String(undo)}`;
    }
    if (err instanceof Error) {
      err.message += note;
      return err;
    }
    return new Error(`${this.name}: provision of '${user}' failed${note}`, { cause: err });
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

  private failure(op: string, raw: unknown): Error {
    return awsFailure(this.name, op, raw);
  }
}

/**
 * Rebuilds an SDK error from AWS's code and message only (AWS never echoes a secret key, but the SDK error also
 * carries the raw response; nothing of the request travels on), classified: transient (a plain Error with
 * `transient: true`, which Temporal retries) or AWS's refusal (ConnectorRefusal, final). No HTTP status means the
 * request did not complete: connection refused or reset, a timeout, and also the SDK's own failures before sending
 * (missing credentials, TLS trouble); those are configuration faults a retry will not fix, but they are kept
 * transient so a fixed deployment resumes rather than failing every change that was under way.
 */
export function awsFailure(connector: string, op: string, raw: unknown): Error {
  const err = raw as AwsFailure;
  const code = (err.name && err.name !== 'Error' ? err.name : err.code) ?? 'Error';
  const status = err.$metadata?.httpStatusCode;
  const message = err.message ?? 'unknown error';
  const cause = Object.assign(new Error(message), { code, status });
  const text = `${connector}: ${op} failed: ${code}: ${message}`;
  if (status === undefined || status >= 500 || status === 429 || TRANSIENT_NAMES.has(code)) {
    return Object.assign(new Error(text, { cause }), { transient: true });
  }
  return new ConnectorRefusal(FailureType.TargetRefused, text, { cause });
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
