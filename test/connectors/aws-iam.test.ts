import { randomBytes } from 'node:crypto';
import {
  AttachRolePolicyCommand,
  CreateAccessKeyCommand,
  CreateGroupCommand,
  CreateInstanceProfileCommand,
  CreateLoginProfileCommand,
  CreatePolicyCommand,
  CreateRoleCommand,
  CreateUserCommand,
  DeleteAccessKeyCommand,
  DeleteGroupCommand,
  DeleteLoginProfileCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DeleteSSHPublicKeyCommand,
  DeleteUserCommand,
  DeleteUserPolicyCommand,
  DetachRolePolicyCommand,
  DetachUserPolicyCommand,
  EnableMFADeviceCommand,
  GetGroupCommand,
  GetRoleCommand,
  GetUserCommand,
  type IAMClient,
  ListAccessKeysCommand,
  ListAttachedRolePoliciesCommand,
  ListAttachedUserPoliciesCommand,
  ListGroupsForUserCommand,
  ListInstanceProfilesForRoleCommand,
  ListRolePoliciesCommand,
  ListRolesCommand,
  ListSSHPublicKeysCommand,
  ListUserPoliciesCommand,
  ListUsersCommand,
  PutRolePolicyCommand,
  PutUserPolicyCommand,
  RemoveRoleFromInstanceProfileCommand,
  RemoveUserFromGroupCommand,
  AddRoleToInstanceProfileCommand,
  UpdateAccessKeyCommand,
  UpdateAssumeRolePolicyCommand,
  UploadSSHPublicKeyCommand,
  UploadSigningCertificateCommand,
  AddUserToGroupCommand,
} from '@aws-sdk/client-iam';
import type { IdentityRef } from '../../src/actions/identity-action';
import type { Connector, RevokeMode } from '../../src/connectors/connector';
import { DISABLED_STATE, GONE, verifyAccount } from '../../src/connectors/connector';
import { revokeTarget } from '../../src/connectors/revoke-policy';
import { ConnectorRefusal, FailureType } from '../../src/connectors/connector-errors';
import { Secret } from '../../src/connectors/secret';
import { awsIamConnectorType, awsIamInstanceSchema } from '../../src/connectors/aws-iam';
import { type AwsIamConnector, awsFailure, createAwsIamConnector } from '../../src/connectors/aws-iam/aws-iam-connector';
import { leastPrivilegePolicy, type IamPolicyDocument } from '../../src/connectors/aws-iam/aws-iam-policy';
import { assumableBy } from '../../src/connectors/aws-iam/aws-iam-roles';
import { describeConnectorContract, type ContractHarness } from './contract';
import { selfSignedCertificate, sshPublicKey } from '../support/credentials';
import { freePort } from '../support/servers/process';
import { MOTO_ACCOUNT_ID, startMoto, type Moto } from '../support/servers/moto';
import { underPolicy, type UnderPolicy } from './under-policy';
import { ruleAttribution } from '../../src/inventory/ownership';

const PATH = '/changegate/';
const suffix = randomBytes(4).toString('hex');
const READ_ONLY = 'arn:aws:iam::aws:policy/ReadOnlyAccess';
const GROUP = `cg-readers-${suffix}`;
const CUSTOMER_POLICY = `cg-read-${suffix}`;
const CUSTOMER_POLICY_ARN = `arn:aws:iam::${MOTO_ACCOUNT_ID}:policy/changegate/${CUSTOMER_POLICY}`;
const ALLOWED_POLICY_ARNS = [READ_ONLY, `arn:aws:iam::${MOTO_ACCOUNT_ID}:policy/changegate/*`];
const CONNECTOR_USER = `changegate-connector-${suffix}`;
const NARROW_USER = `changegate-narrow-${suffix}`;

/**
 * moto evaluates a policy's actions but sees every IAM user action's resource as `*` and ignores ArnLike
 * conditions, so the documented path-scoped Resources would deny everything there. The test user gets the same
 * actions (and conditions) with `Resource: *`; the path and allow-list limits are then the connector's own checks.
 */
function motoEvaluable(doc: IamPolicyDocument, without: string[] = []): IamPolicyDocument {
  return {
    Version: doc.Version,
    Statement: doc.Statement.map((s) => ({ ...s, Action: s.Action.filter((a) => !without.includes(a)), Resource: ['*'] })).filter((s) => s.Action.length > 0),
  };
}

const isNoSuchEntity = (e: unknown) => (e as { name?: string }).name === 'NoSuchEntityException';
async function ignoreMissing(run: () => Promise<unknown>): Promise<void> {
  await run().catch((e: unknown) => {
    if (!isNoSuchEntity(e)) throw e;
  });
}

/** Everything a test may have left, removed as the administrator; quiet when nothing is there. */
async function adminRemove(admin: IAMClient, identity: IdentityRef): Promise<void> {
  if (identity.name.startsWith('role/')) {
    const RoleName = identity.name.slice(5);
    const attached = await admin.send(new ListAttachedRolePoliciesCommand({ RoleName })).catch((e: unknown) => (isNoSuchEntity(e) ? null : Promise.reject(e)));
    if (attached === null) return;
    for (const p of attached.AttachedPolicies ?? []) await admin.send(new DetachRolePolicyCommand({ RoleName, PolicyArn: p.PolicyArn }));
    for (const p of (await admin.send(new ListRolePoliciesCommand({ RoleName }))).PolicyNames ?? []) await admin.send(new DeleteRolePolicyCommand({ RoleName, PolicyName: p }));
    for (const ip of (await admin.send(new ListInstanceProfilesForRoleCommand({ RoleName }))).InstanceProfiles ?? []) {
      await admin.send(new RemoveRoleFromInstanceProfileCommand({ RoleName, InstanceProfileName: ip.InstanceProfileName }));
    }
    await ignoreMissing(() => admin.send(new DeleteRoleCommand({ RoleName })));
    return;
  }
  const UserName = identity.name;
  const keys = await admin.send(new ListAccessKeysCommand({ UserName })).catch((e: unknown) => (isNoSuchEntity(e) ? null : Promise.reject(e)));
  if (keys === null) return;
  for (const k of keys.AccessKeyMetadata ?? []) await admin.send(new DeleteAccessKeyCommand({ UserName, AccessKeyId: k.AccessKeyId }));
  for (const k of (await admin.send(new ListSSHPublicKeysCommand({ UserName }))).SSHPublicKeys ?? []) await admin.send(new DeleteSSHPublicKeyCommand({ UserName, SSHPublicKeyId: k.SSHPublicKeyId }));
  await ignoreMissing(() => admin.send(new DeleteLoginProfileCommand({ UserName })));
  for (const p of (await admin.send(new ListAttachedUserPoliciesCommand({ UserName }))).AttachedPolicies ?? []) await admin.send(new DetachUserPolicyCommand({ UserName, PolicyArn: p.PolicyArn }));
  for (const g of (await admin.send(new ListGroupsForUserCommand({ UserName }))).Groups ?? []) await admin.send(new RemoveUserFromGroupCommand({ UserName, GroupName: g.GroupName }));
  for (const p of (await admin.send(new ListUserPoliciesCommand({ UserName }))).PolicyNames ?? []) await admin.send(new DeleteUserPolicyCommand({ UserName, PolicyName: p }));
  await ignoreMissing(() => admin.send(new DeleteUserCommand({ UserName })));
}

/** Every user and role with its path, keys, console password, policies and groups, read as the administrator. */
async function adminSnapshot(admin: IAMClient): Promise<unknown> {
  const users = [];
  for (const u of (await admin.send(new ListUsersCommand({ MaxItems: 1000 }))).Users ?? []) {
    const UserName = u.UserName;
    users.push({
      name: UserName,
      path: u.Path,
      keys: ((await admin.send(new ListAccessKeysCommand({ UserName }))).AccessKeyMetadata ?? []).map((k) => `${k.AccessKeyId}:${k.Status}`).sort(),
      policies: ((await admin.send(new ListAttachedUserPoliciesCommand({ UserName }))).AttachedPolicies ?? []).map((p) => p.PolicyArn).sort(),
      groups: ((await admin.send(new ListGroupsForUserCommand({ UserName }))).Groups ?? []).map((g) => g.GroupName).sort(),
      inline: ((await admin.send(new ListUserPoliciesCommand({ UserName }))).PolicyNames ?? []).sort(),
    });
  }
  const roles = [];
  for (const r of (await admin.send(new ListRolesCommand({ MaxItems: 1000 }))).Roles ?? []) {
    const RoleName = r.RoleName;
    roles.push({ name: RoleName, path: r.Path, policies: ((await admin.send(new ListAttachedRolePoliciesCommand({ RoleName }))).AttachedPolicies ?? []).map((p) => p.PolicyArn).sort() });
  }
  return { users: users.sort((a, b) => String(a.name).localeCompare(String(b.name))), roles: roles.sort((a, b) => String(a.name).localeCompare(String(b.name))) };
}

const refusalOf = async (run: () => Promise<unknown>): Promise<ConnectorRefusal> => {
  const err = await run().then(() => null, (e: unknown) => e);
  if (!(err instanceof ConnectorRefusal)) throw new Error(`expected a ConnectorRefusal, got ${String(err)}`);
  return err;
};

describe('AWS IAM connector against moto with IAM access control on, using a least-privilege user', () => {
  let moto: Moto;
  /** The secret half of each access key seedOutOfBand created, as IAM handed it out (once). */
  const seededKeys = new Map<string, string>();
  const env: Record<string, string> = {};
  const open: Connector[] = [];
  const made: IdentityRef[] = [];
  let harness: ContractHarness;

  const config = (overrides: Record<string, unknown> = {}) =>
    awsIamInstanceSchema.parse({
      name: 'aws-iam-test',
      type: 'aws-iam',
      endpoint: moto.endpoint,
      region: 'us-east-1',
      path: PATH,
      userName: CONNECTOR_USER,
      accessKeyIdEnv: 'CG_TEST_AWS_KEY_ID',
      secretAccessKeyEnv: 'CG_TEST_AWS_SECRET',
      allowedPolicyArns: ALLOWED_POLICY_ARNS,
      allowedGroups: [GROUP],
      policy: { protectedAccounts: ['moto-admin'] },
      ...overrides,
    });
  const connect = (overrides: Record<string, unknown> = {}): UnderPolicy<AwsIamConnector> => {
    const cfg = config(overrides);
    const c = awsIamConnectorType.create(cfg, (key) => {
      const v = env[key];
      if (v === undefined) throw new Error(`${key} not set`);
      return v;
    }) as AwsIamConnector;
    open.push(c);
    return underPolicy(c, cfg.policy.revokeMode);
  };
  const fresh = (prefix = 'cgt'): IdentityRef => {
    const id: IdentityRef = { type: 'service_account', name: `${prefix}-${randomBytes(5).toString('hex')}` };
    made.push(id);
    return id;
  };
  /** A user at the root path (outside the managed one) holding the given identity policy and one access key. */
  const credentialUser = async (userName: string, policy: IamPolicyDocument, envPrefix: string) => {
    await moto.admin.send(new CreateUserCommand({ UserName: userName }));
    await moto.admin.send(new PutUserPolicyCommand({ UserName: userName, PolicyName: 'changegate-connector', PolicyDocument: JSON.stringify(policy) }));
    const key = (await moto.admin.send(new CreateAccessKeyCommand({ UserName: userName }))).AccessKey!;
    env[`${envPrefix}_KEY_ID`] = key.AccessKeyId!;
    env[`${envPrefix}_SECRET`] = key.SecretAccessKey!;
  };

  beforeAll(async () => {
    moto = await startMoto();
    await moto.admin.send(new CreateGroupCommand({ GroupName: GROUP }));
    await moto.admin.send(new CreatePolicyCommand({
      PolicyName: CUSTOMER_POLICY,
      Path: PATH,
      PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'iam:Get*', Resource: '*' }] }),
    }));
    const documented = leastPrivilegePolicy({ accountId: MOTO_ACCOUNT_ID, path: PATH, allowedPolicyArns: ALLOWED_POLICY_ARNS, allowedGroups: [GROUP] });
    await credentialUser(CONNECTOR_USER, motoEvaluable(documented), 'CG_TEST_AWS');
    // The same policy without AttachUserPolicy: the target, not the connector, must refuse the attach.
    await credentialUser(NARROW_USER, motoEvaluable(documented, ['iam:AttachUserPolicy']), 'CG_TEST_AWS_NARROW');
    const connector = connect();
    const byMode = new Map<RevokeMode, Connector>([['delete', connector]]);
    harness = {
      connector: (mode = 'delete') => byMode.get(mode) ?? byMode.set(mode, connect({ policy: { protectedAccounts: ['moto-admin'], revokeMode: mode } })).get(mode)!,
      freshIdentity: () => ({ type: 'service_account', name: `cgt-${randomBytes(5).toString('hex')}` }),
      grants: [`policy=${READ_ONLY}`, `group=${GROUP}`],
      seedOutOfBand: async (id) => {
        // Every kind of credential an IAM user can hold: access key, console password, SSH public key, signing
        // certificate, MFA device; and a group membership.
        await moto.admin.send(new CreateUserCommand({ UserName: id.name, Path: PATH }));
        const key = (await moto.admin.send(new CreateAccessKeyCommand({ UserName: id.name }))).AccessKey!;
        seededKeys.set(id.name, key.SecretAccessKey!);
        await moto.admin.send(new CreateLoginProfileCommand({ UserName: id.name, Password: 'Aa1!aaaaaaaaaaaa' }));
        await moto.admin.send(new UploadSSHPublicKeyCommand({ UserName: id.name, SSHPublicKeyBody: sshPublicKey() }));
        await moto.admin.send(new UploadSigningCertificateCommand({ UserName: id.name, CertificateBody: selfSignedCertificate() }));
        await moto.admin.send(new EnableMFADeviceCommand({ UserName: id.name, SerialNumber: `arn:aws:iam::${MOTO_ACCOUNT_ID}:mfa/${id.name}`, AuthenticationCode1: '123456', AuthenticationCode2: '654321' }));
        await moto.admin.send(new AddUserToGroupCommand({ UserName: id.name, GroupName: GROUP }));
      },
      storedSecrets: async (id) => [{ what: 'an IAM secret access key (CreateAccessKey)', value: seededKeys.get(id.name) ?? '' }],
      snapshot: () => adminSnapshot(moto.admin),
      ownIdentityName: CONNECTOR_USER,
      hostileNames: [
        'role/a b', 'role/', 'role/../x', 'role//x', 'user/x', `arn:aws:iam::${MOTO_ACCOUNT_ID}:user/x`, 'x'.repeat(65),
        `role/${'x'.repeat(65)}`, 'a:b', 'a|b', 'é', CONNECTOR_USER.toUpperCase(), 'MOTO-ADMIN', 'a+b=c,d.e@f-g',
      ],
      hostileGrants: [
        'policy=arn:aws:iam::aws:policy/AdministratorAccess', 'group=admins', `policy=${READ_ONLY} `, ` policy=${READ_ONLY}`,
        `Policy=${READ_ONLY}`, `policy = ${READ_ONLY}`, `policy=${READ_ONLY}*`, 'policy=arn:aws:iam::aws:policy/../AdministratorAccess',
        `policy=arn:aws:iam::${MOTO_ACCOUNT_ID}:policy/changegate/../Admin`, `policy=arn:aws:iam::${MOTO_ACCOUNT_ID}:policy/changegate/*`,
        `group=${GROUP}\n`, 'group=*', 'inline=x', `policy=${READ_ONLY},group=${GROUP}`, `policy=${READ_ONLY}\u0000`,
        'policy=arn:aws:iam::aws:user/ReadOnlyAccess', 'policy=ReadOnlyAccess', `policy=arn:aws:iam::1234:policy/changegate/x`,
      ],
      unreachable: () => {
        const c = awsIamConnectorType.create(config({ endpoint: `http://127.0.0.1:${unusedPort}` }), (k) => env[k] ?? '');
        return c;
      },
      targetRefusal: async () => {
        const narrow = connect({ accessKeyIdEnv: 'CG_TEST_AWS_NARROW_KEY_ID', secretAccessKeyEnv: 'CG_TEST_AWS_NARROW_SECRET', userName: NARROW_USER });
        const id = fresh('cgt-narrow');
        return { run: () => narrow.provision(id, [`policy=${READ_ONLY}`]), causeMatches: /not authorized to perform: iam:AttachUserPolicy/ };
      },
      acceptedButNotApplied: async () => {
        // moto refuses attaching a missing policy or joining a missing group (NoSuchEntity), so there is no
        // accepted-but-ignored call to find there; this is drift instead: AWS accepted both grants, then an
        // administrator detached one behind the gateway's back before the read-back.
        const id = fresh('cgt-drift');
        await connector.provision(id, [`policy=${READ_ONLY}`, `group=${GROUP}`]);
        await moto.admin.send(new DetachUserPolicyCommand({ UserName: id.name, PolicyArn: READ_ONLY }));
        return { identity: id, desired: { exists: true, mustHave: [`policy=${READ_ONLY}`, `group=${GROUP}`] } };
      },
      cleanup: (id) => adminRemove(moto.admin, id),
      rotates: true,
    };
    unusedPort = await freePort();
  }, 60_000);
  let unusedPort = 0;

  afterAll(async () => {
    if (!moto) return;
    for (const id of made) await adminRemove(moto.admin, id);
    for (const c of open) await c.close();
    await moto.stop();
  });

  describeConnectorContract('aws-iam (moto)', () => harness);

  it('with ownership rules on tags, discovery reads only the tags they name, under a policy that adds the tag reads, and a rule maps the tagged user', async () => {
    const tagged = fresh('cgt-tag');
    await moto.admin.send(new CreateUserCommand({ UserName: tagged.name, Path: PATH, Tags: [{ Key: 'Team', Value: 'billing' }, { Key: 'cost-centre', Value: '4711' }] }));
    const rules = [{ attribute: 'team', equals: 'billing', owner: 'team-billing', workload: 'billing-api' }];
    const tagReader = `changegate-tags-${suffix}`;
    const withTags = leastPrivilegePolicy({ accountId: MOTO_ACCOUNT_ID, path: PATH, allowedPolicyArns: ALLOWED_POLICY_ARNS, allowedGroups: [GROUP], readTags: true });
    expect(withTags.Statement.find((st) => st.Sid === 'ReadIdentities')?.Action).toEqual(expect.arrayContaining(['iam:ListUserTags', 'iam:ListRoleTags']));
    await credentialUser(tagReader, motoEvaluable(withTags), 'CG_TEST_AWS_TAGS');
    const c = connect({ userName: tagReader, accessKeyIdEnv: 'CG_TEST_AWS_TAGS_KEY_ID', secretAccessKeyEnv: 'CG_TEST_AWS_TAGS_SECRET', policy: { protectedAccounts: ['moto-admin'], ownership: rules } });
    const found = (await c.discover()).find((d) => d.name === tagged.name);
    expect(found?.attributes).toEqual({ Team: ['billing'] });
    expect(ruleAttribution(rules, found!)).toEqual({ owner: 'team-billing', workload: 'billing-api' });
    // The documented policy without tag rules holds no tag read, and moto refuses the listing under it.
    const plain = connect({ policy: { protectedAccounts: ['moto-admin'], ownership: rules } });
    await expect(plain.discover()).rejects.toThrow(/ListUserTags/);
    expect(JSON.stringify(leastPrivilegePolicy({ accountId: MOTO_ACCOUNT_ID, path: PATH, allowedPolicyArns: [], allowedGroups: [] }))).not.toMatch(/Tags/);
  });

  it("the connector's credential is refused by moto outside its policy: writing policies, making roles, setting passwords", async () => {
    const self = moto.clientFor(env.CG_TEST_AWS_KEY_ID!, env.CG_TEST_AWS_SECRET!);
    try {
      const doc = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] });
      const attempts = [
        () => self.send(new PutUserPolicyCommand({ UserName: CONNECTOR_USER, PolicyName: 'escalate', PolicyDocument: doc })),
        () => self.send(new CreateRoleCommand({ RoleName: `cg-escalate-${suffix}`, AssumeRolePolicyDocument: doc })),
        () => self.send(new CreateLoginProfileCommand({ UserName: CONNECTOR_USER, Password: 'Aa1!aaaaaaaaaaaa' })),
      ];
      for (const attempt of attempts) {
        await expect(attempt()).rejects.toMatchObject({ name: 'AccessDenied', message: expect.stringMatching(new RegExp(`user/${CONNECTOR_USER} is not authorized`)) });
      }
    } finally {
      self.destroy();
    }
  });

  it('an allow-listed policy that does not exist is refused by AWS (NoSuchEntity) before the user is created; one off the allow-list never leaves the gateway', async () => {
    const c = harness.connector() as UnderPolicy<AwsIamConnector>;
    const id = fresh();
    const before = await adminSnapshot(moto.admin);
    const missingArn = `arn:aws:iam::${MOTO_ACCOUNT_ID}:policy/changegate/cg-missing-${suffix}`;
    const missing = await refusalOf(() => c.provision(id, [`group=${GROUP}`, `policy=${missingArn}`]));
    expect(missing.type).toBe(FailureType.TargetRefused);
    expect(missing.message).toMatch(/GetPolicy failed/);
    expect((missing.cause as Error).message).toMatch(new RegExp(`${missingArn} not found`));
    expect((missing.cause as { code?: string }).code).toBe('NoSuchEntityException');
    expect(await adminSnapshot(moto.admin)).toEqual(before);
    const offList = await refusalOf(() => c.provision(fresh(), ['policy=arn:aws:iam::aws:policy/AdministratorAccess']));
    expect(offList.type).toBe(FailureType.InvalidIdentity);
    expect(offList.message).toMatch(/not on this connector's allow-list/);
    expect(await adminSnapshot(moto.admin)).toEqual(before);
    // A customer-managed policy under the allow-listed path is attached and reported by its ARN.
    await c.provision(id, [`policy=${CUSTOMER_POLICY_ARN}`]);
    expect((await c.inspect(id)).grants).toEqual([`policy=${CUSTOMER_POLICY_ARN}`]);
  });

  it('rotation creates a second key and retireOthers deactivates the previous one; the next rotation deletes that inactive key, so at most two keys', async () => {
    const c = harness.connector() as UnderPolicy<AwsIamConnector>;
    const id = fresh();
    await c.provision(id, [`group=${GROUP}`]);
    expect((await c.inspect(id)).locked).toBe(true); // a new user has no credential until its first rotation
    const first = await c.rotate(id);
    expect(first.detail).toMatch(/no previous active key/);
    expect(await c.retireOthers(id, first.credentialId!)).toEqual({ retired: 0, detail: expect.stringMatching(/no active access key .* other than/) });
    const second = await c.rotate(id);
    expect(second.detail).toContain(`${first.credentialId} stays active until the new key is delivered and verified`);
    expect((await c.inspect(id)).attributes?.accessKeys).toEqual([`${first.credentialId}:Active`, `${second.credentialId}:Active`].sort());
    const retired = await c.retireOthers(id, second.credentialId!);
    expect(retired).toEqual({ retired: 1, detail: expect.stringContaining(`deactivated ${first.credentialId}`) });
    expect((await c.retireOthers(id, second.credentialId!)).retired).toBe(0);
    const third = await c.rotate(id);
    expect(third.detail).toContain(`deleted ${first.credentialId} (inactive)`);
    expect(third.detail).toContain(`${second.credentialId} stays active`);
    await c.retireOthers(id, third.credentialId!);
    const pair = JSON.parse(third.secret.reveal()) as { accessKeyId: string; secretAccessKey: string };
    expect(Object.keys(pair).sort()).toEqual(['accessKeyId', 'secretAccessKey']);
    expect(third.credentialId).toBe(pair.accessKeyId);
    expect(third.detail).not.toContain(pair.secretAccessKey);
    const observed = await c.inspect(id);
    expect(observed.locked).toBe(false);
    expect(observed.attributes?.accessKeys).toEqual([`${second.credentialId}:Inactive`, `${third.credentialId}:Active`].sort());
    // This user holds no policy, not even iam:GetUser: its key still authenticates (AWS names it in AccessDenied).
    expect(await c.authenticates(id, third.secret)).toBe(true);
    expect(await c.authenticates(id, second.secret)).toBe(false);
    expect(await c.authenticates(id, first.secret)).toBe(false);
    // Another user's valid key does not authenticate as this one.
    const other = fresh();
    await c.provision(other, [`group=${GROUP}`]);
    expect(await c.authenticates(other, third.secret)).toBe(false);
    // The right key id with a wrong secret is refused (SignatureDoesNotMatch).
    const forged = new Secret(JSON.stringify({ accessKeyId: pair.accessKeyId, secretAccessKey: `${pair.secretAccessKey}x` }));
    expect(await c.authenticates(id, forged)).toBe(false);
  });

  it('a delivery that failed after rotate leaves the old key active and authenticating; the retry replaces the undelivered key, and only retireOthers retires the old one', async () => {
    const c = harness.connector() as UnderPolicy<AwsIamConnector>;
    const id = fresh();
    await c.provision(id, [`policy=${READ_ONLY}`]);
    const workload = await c.rotate(id);
    await c.retireOthers(id, workload.credentialId!);
    // Rotation attempt 1: the key is created, then delivery to the store fails, so retireOthers is never called.
    const undelivered = await c.rotate(id);
    expect(await c.authenticates(id, workload.secret)).toBe(true);
    expect(await c.authenticates(id, undelivered.secret)).toBe(true);
    expect((await c.inspect(id)).attributes?.accessKeys).toEqual([`${workload.credentialId}:Active`, `${undelivered.credentialId}:Active`].sort());
    // Attempt 2 (Temporal's retry): two active keys, so the newer, undelivered one makes room; the workload's stays.
    const retry = await c.rotate(id);
    expect(retry.detail).toContain(`deleted ${undelivered.credentialId} (active, newer: never delivered)`);
    expect(await c.authenticates(id, workload.secret)).toBe(true);
    expect(await c.authenticates(id, undelivered.secret)).toBe(false);
    expect(await c.authenticates(id, retry.secret)).toBe(true);
    // Delivered and verified: now the workload's previous key is retired, kept inactive for rollback.
    expect((await c.retireOthers(id, retry.credentialId!)).retired).toBe(1);
    expect(await c.authenticates(id, workload.secret)).toBe(false);
    expect((await c.inspect(id)).attributes?.accessKeys).toEqual([`${workload.credentialId}:Inactive`, `${retry.credentialId}:Active`].sort());
  });

  it('retireOthers refuses, changing nothing, when the key to keep is not an access key id, not listed for the user, or not active', async () => {
    const quick = createAwsIamConnector({
      name: 'aws-iam-quick', endpoint: moto.endpoint, region: 'us-east-1', path: PATH,
      accessKeyId: env.CG_TEST_AWS_KEY_ID!, secretAccessKey: env.CG_TEST_AWS_SECRET!, userName: CONNECTOR_USER,
      protectedAccounts: ['moto-admin'], allowedPolicyArns: ALLOWED_POLICY_ARNS, allowedGroups: [GROUP], consistencyWaitMs: 300,
    });
    open.push(quick);
    const id = fresh();
    await quick.provision(id, [`group=${GROUP}`]);
    const a = await quick.rotate(id);
    const b = await quick.rotate(id);
    const other = fresh();
    await quick.provision(other, [`group=${GROUP}`]);
    const foreign = await quick.rotate(other);
    const before = (await quick.inspect(id)).attributes?.accessKeys;
    expect((await refusalOf(() => quick.retireOthers(id, ''))).type).toBe(FailureType.InvalidIdentity);
    expect((await refusalOf(() => quick.retireOthers(id, foreign.credentialId!))).message).toMatch(/is not listed for .*refusing to retire/);
    await moto.admin.send(new UpdateAccessKeyCommand({ UserName: id.name, AccessKeyId: b.credentialId, Status: 'Inactive' }));
    expect((await refusalOf(() => quick.retireOthers(id, b.credentialId!))).message).toMatch(/is not active/);
    expect((await quick.inspect(id)).attributes?.accessKeys).toEqual(
      (before as string[]).map((k) => (k.startsWith(`${b.credentialId}:`) ? `${b.credentialId}:Inactive` : k)),
    );
    expect(await quick.authenticates(id, a.secret)).toBe(true);
  });

  it("moto accepts a deactivated key's signature (AWS would not), so authenticates() also requires the key to be listed Active", async () => {
    const c = harness.connector() as UnderPolicy<AwsIamConnector>;
    const id = fresh();
    await c.provision(id, [`policy=${READ_ONLY}`]);
    const old = await c.rotate(id);
    const current = await c.rotate(id);
    await c.retireOthers(id, current.credentialId!);
    const pair = JSON.parse(old.secret.reveal()) as { accessKeyId: string; secretAccessKey: string };
    const probe = moto.clientFor(pair.accessKeyId, pair.secretAccessKey);
    try {
      // ReadOnlyAccess allows iam:GetUser: with the inactive key, moto answers as if the key were live.
      expect((await probe.send(new GetUserCommand({}))).User?.UserName).toBe(id.name);
    } finally {
      probe.destroy();
    }
    expect(await c.authenticates(id, old.secret)).toBe(false);
  });

  it('disable-mode revoke deactivates access and SSH keys, deletes the console password, strips policies, groups and inline policies, and keeps the user', async () => {
    const c = connect({ policy: { protectedAccounts: ['moto-admin'], revokeMode: 'disable' } });
    const id = fresh();
    await c.provision(id, [`policy=${READ_ONLY}`, `group=${GROUP}`]);
    const key = await c.rotate(id);
    await moto.admin.send(new CreateLoginProfileCommand({ UserName: id.name, Password: 'Aa1!aaaaaaaaaaaa' }));
    await moto.admin.send(new PutUserPolicyCommand({ UserName: id.name, PolicyName: 'side-door', PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] }) }));
    const ssh = (await moto.admin.send(new UploadSSHPublicKeyCommand({ UserName: id.name, SSHPublicKeyBody: sshPublicKey() }))).SSHPublicKey!.SSHPublicKeyId;
    expect((await c.inspect(id)).grants).toEqual([`group=${GROUP}`, 'inline=side-door', `policy=${READ_ONLY}`]);
    const out = await c.leave(id);
    expect(out).toMatchObject({ changed: true, expected: { exists: true, locked: true, noGrants: true } });
    const observed = await c.inspect(id);
    expect(verifyAccount(out.expected!, observed)).toEqual({ verified: true, mismatches: [] });
    expect(observed.attributes).toMatchObject({ accessKeys: [`${key.credentialId}:Inactive`], loginProfile: false, otherCredentials: [`ssh-key:${ssh}:Inactive`] });
    expect(await c.authenticates(id, key.secret)).toBe(false);
    expect(await c.leave(id)).toMatchObject({ changed: false });
  });

  it('an active SSH public key alone keeps a user unlocked: it is a credential too', async () => {
    const c = harness.connector() as UnderPolicy<AwsIamConnector>;
    const id = fresh();
    await c.provision(id, [`group=${GROUP}`]);
    expect((await c.inspect(id)).locked).toBe(true);
    await moto.admin.send(new UploadSSHPublicKeyCommand({ UserName: id.name, SSHPublicKeyBody: sshPublicKey() }));
    expect((await c.inspect(id)).locked).toBe(false);
  });

  it('delete-mode revoke removes access keys, SSH keys, MFA devices, console password, inline policies, groups and policies before deleting the user', async () => {
    const c = harness.connector() as UnderPolicy<AwsIamConnector>;
    const id = fresh();
    await c.provision(id, [`policy=${READ_ONLY}`, `group=${GROUP}`]);
    await c.rotate(id);
    await c.retireOthers(id, (await c.rotate(id)).credentialId!);
    await moto.admin.send(new CreateLoginProfileCommand({ UserName: id.name, Password: 'Aa1!aaaaaaaaaaaa' }));
    await moto.admin.send(new PutUserPolicyCommand({ UserName: id.name, PolicyName: 'side-door', PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] }) }));
    await moto.admin.send(new UploadSSHPublicKeyCommand({ UserName: id.name, SSHPublicKeyBody: sshPublicKey() }));
    await moto.admin.send(new EnableMFADeviceCommand({ UserName: id.name, SerialNumber: `arn:aws:iam::${MOTO_ACCOUNT_ID}:mfa/${id.name}`, AuthenticationCode1: '123456', AuthenticationCode2: '654321' }));
    expect((await c.inspect(id)).attributes).toMatchObject({ mfaDevices: 1 });
    const out = await c.leave(id);
    expect(out.detail).toMatch(
      /deactivated 1 access key.*deactivated 1 SSH key.*deleted the console password.*removed from 1 group.*detached 1 policy.*deleted 1 inline.*deleted 2 access key.*deleted 1 SSH key.*deactivated 1 MFA device.*deleted user/,
    );
    await expect(moto.admin.send(new GetUserCommand({ UserName: id.name }))).rejects.toMatchObject({ name: 'NoSuchEntityException' });
    expect(await c.inspect(id)).toEqual({ exists: false, grants: [] });
  });

  it('refuses to touch a user outside its managed path, and discovery marks that user protected', async () => {
    const c = harness.connector() as UnderPolicy<AwsIamConnector>;
    const outsider = fresh('cgt-outside');
    await moto.admin.send(new CreateUserCommand({ UserName: outsider.name, Path: '/' }));
    for (const op of [() => c.inspect(outsider), () => c.provision(outsider, [`group=${GROUP}`]), () => c.leave(outsider), () => c.rotate(outsider)]) {
      const err = await refusalOf(op);
      expect(err.type).toBe(FailureType.TargetRefused);
      expect(err.message).toMatch(/outside the managed path \/changegate\//);
    }
    expect((await moto.admin.send(new ListGroupsForUserCommand({ UserName: outsider.name }))).Groups).toEqual([]);
    const found = await c.discover();
    expect(found.find((d) => d.name === outsider.name)).toEqual({ name: outsider.name, protected: true });
    expect(found.find((d) => d.name === 'moto-admin')?.protected).toBe(true);
  });

  it('roles under the managed path: inspected, discovered, granted, stripped and deleted; never created, never rotated', async () => {
    const c = harness.connector() as UnderPolicy<AwsIamConnector>;
    const roleName = `cgt-role-${randomBytes(4).toString('hex')}`;
    const role: IdentityRef = { type: 'service_account', name: `role/${roleName}` };
    made.push(role);
    const trust = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] });
    const missing = await refusalOf(() => c.provision(role, [`policy=${READ_ONLY}`]));
    expect(missing.message).toMatch(/does not create roles/);
    expect((await refusalOf(() => c.provision(role, [`group=${GROUP}`]))).type).toBe(FailureType.InvalidIdentity);

    await moto.admin.send(new CreateRoleCommand({ RoleName: roleName, Path: PATH, AssumeRolePolicyDocument: trust }));
    await moto.admin.send(new AttachRolePolicyCommand({ RoleName: roleName, PolicyArn: CUSTOMER_POLICY_ARN }));
    await moto.admin.send(new PutRolePolicyCommand({ RoleName: roleName, PolicyName: 'extra', PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] }) }));
    await moto.admin.send(new CreateInstanceProfileCommand({ InstanceProfileName: roleName }));
    await moto.admin.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: roleName, RoleName: roleName }));

    expect(await c.provision(role, [`policy=${READ_ONLY}`])).toMatchObject({ created: false });
    expect(await c.inspect(role)).toEqual({
      exists: true,
      grants: ['inline=extra', `policy=${CUSTOMER_POLICY_ARN}`, `policy=${READ_ONLY}`],
      locked: false,
      attributes: { kind: 'role', path: PATH, instanceProfiles: [roleName], assumableBy: ['Service:ec2.amazonaws.com'] },
    });
    expect((await c.discover()).find((d) => d.name === role.name)).toEqual({ name: role.name, type: 'service_account' });
    expect((await c.expire(role, [`policy=${READ_ONLY}`], false)).changed).toBe(true);
    expect((await c.inspect(role)).grants).toEqual(['inline=extra', `policy=${CUSTOMER_POLICY_ARN}`]);
    expect((await refusalOf(() => c.rotate(role))).message).toMatch(/a role has no long-lived credential/);

    const out = await c.leave(role);
    expect(out.detail).toMatch(/detached 1 policy.*deleted 1 inline.*removed from 1 instance profile.*deleted role/);
    expect(await c.inspect(role)).toEqual({ exists: false, grants: [] });
    expect((await c.leave(role)).changed).toBe(false);
  });

  it('a grant on an allow-listed group that no longer exists is refused (NoSuchEntity) before any write: no user is left', async () => {
    const gone = `cg-gone-${suffix}`;
    await moto.admin.send(new CreateGroupCommand({ GroupName: gone }));
    await moto.admin.send(new DeleteGroupCommand({ GroupName: gone }));
    const c = connect({ allowedGroups: [GROUP, gone] });
    const id = fresh();
    const before = await adminSnapshot(moto.admin);
    const err = await refusalOf(() => c.provision(id, [`group=${GROUP}`, `group=${gone}`]));
    expect(err.type).toBe(FailureType.TargetRefused);
    expect(err.message).toMatch(/GetGroup failed/);
    expect((err.cause as { code?: string }).code).toBe('NoSuchEntityException');
    expect((err.cause as Error).message).toMatch(new RegExp(`Group ${gone} not found`));
    await expect(moto.admin.send(new GetUserCommand({ UserName: id.name }))).rejects.toMatchObject({ name: 'NoSuchEntityException' });
    expect(await adminSnapshot(moto.admin)).toEqual(before);
  });

  it('a refusal after CreateUser rolls back: the user this provision created leaves its group and is deleted, and the refusal keeps AWS words as cause', async () => {
    const narrow = connect({ accessKeyIdEnv: 'CG_TEST_AWS_NARROW_KEY_ID', secretAccessKeyEnv: 'CG_TEST_AWS_NARROW_SECRET', userName: NARROW_USER });
    const id = fresh('cgt-rollback');
    const before = await adminSnapshot(moto.admin);
    // The group is joined first, then the attach is AccessDenied (the narrow credential lacks AttachUserPolicy).
    const err = await refusalOf(() => narrow.provision(id, [`group=${GROUP}`, `policy=${READ_ONLY}`]));
    expect(err.type).toBe(FailureType.TargetRefused);
    expect(err.message).toMatch(new RegExp(`AttachUserPolicy failed: AccessDenied: .*; rolled back: deleted user '${id.name}'`));
    expect((err.cause as Error).message).toMatch(/not authorized to perform: iam:AttachUserPolicy/);
    await expect(moto.admin.send(new GetUserCommand({ UserName: id.name }))).rejects.toMatchObject({ name: 'NoSuchEntityException' });
    expect(((await moto.admin.send(new GetGroupCommand({ GroupName: GROUP }))).Users ?? []).map((u) => u.UserName)).not.toContain(id.name);
    expect(await adminSnapshot(moto.admin)).toEqual(before);
    // A user that already existed is not this call's to delete: the same refusal leaves it (and its new group) in place.
    await moto.admin.send(new CreateUserCommand({ UserName: id.name, Path: PATH }));
    const again = await refusalOf(() => narrow.provision(id, [`group=${GROUP}`, `policy=${READ_ONLY}`]));
    expect(again.message).not.toMatch(/rolled back/);
    expect((await harness.connector().inspect(id))).toMatchObject({ exists: true, grants: [`group=${GROUP}`] });
  });

  it('IAM saying another change is in flight (EntityTemporarilyUnmodifiable, ConcurrentModification), throttling, 5xx and no response are transient; other 4xx are refusals with AWS words as cause', () => {
    const fault = (name: string, status?: number) => ({ name, message: `${name} happened`, ...(status === undefined ? {} : { $metadata: { httpStatusCode: status } }) });
    for (const f of [
      fault('EntityTemporarilyUnmodifiableException', 409), fault('EntityTemporarilyUnmodifiable', 409),
      fault('ConcurrentModificationException', 409), fault('ConcurrentModification', 400), fault('Throttling', 400),
      fault('ServiceFailureException', 500), fault('TooManyRequestsException', 429), fault('TimeoutError'), fault('CredentialsProviderError'),
    ]) {
      const err = awsFailure('aws-iam-test', 'DeleteUser', f) as Error & { transient?: boolean };
      expect(err).not.toBeInstanceOf(ConnectorRefusal);
      expect(err.transient).toBe(true);
      expect(err.message).toBe(`aws-iam-test: DeleteUser failed: ${f.name}: ${f.name} happened`);
    }
    for (const f of [fault('AccessDenied', 403), fault('NoSuchEntityException', 404), fault('DeleteConflictException', 409), fault('LimitExceededException', 409)]) {
      const err = awsFailure('aws-iam-test', 'DeleteUser', f);
      expect(err).toBeInstanceOf(ConnectorRefusal);
      expect((err as ConnectorRefusal).type).toBe(FailureType.TargetRefused);
      expect(err.cause).toMatchObject({ message: `${f.name} happened`, code: f.name, status: f.$metadata?.httpStatusCode });
    }
  });

  it('the least-privilege policy scopes group membership and GetGroup to the allow-listed groups, GetPolicy to the allow-listed policies, and holds no group action without groups', () => {
    const doc = leastPrivilegePolicy({ accountId: '111122223333', path: PATH, allowedPolicyArns: [READ_ONLY], allowedGroups: ['readers'] });
    const groupStatements = doc.Statement.filter((st) => st.Action.some((a) => /Group$/.test(a) && a !== 'iam:ListGroupsForUser'));
    expect(groupStatements).toEqual([
      {
        Sid: 'ManageAllowListedGroupMembership',
        Effect: 'Allow',
        Action: ['iam:GetGroup', 'iam:AddUserToGroup', 'iam:RemoveUserFromGroup'],
        Resource: ['arn:aws:iam::111122223333:group/readers', 'arn:aws:iam::111122223333:group/*/readers'],
      },
    ]);
    expect(doc.Statement.find((st) => st.Action.includes('iam:GetPolicy'))?.Resource).toEqual([READ_ONLY]);
    expect(JSON.stringify(doc)).not.toMatch(/group\/\*"|UpdateAssumeRolePolicy|Put\w*Policy|PassRole|CreateRole/);
    // Every write on a user or a role is scoped to the managed path; the one exception is stated in aws-iam-policy.ts.
    for (const st of doc.Statement.filter((x) => x.Sid !== 'ReadIdentities')) {
      expect(st.Resource.every((r) => r.includes(`user${PATH}`) || r.includes(`role${PATH}`) || r.includes(':group/') || r.includes(':policy/') || r.endsWith(':instance-profile/*'))).toBe(true);
    }
    const bare = leastPrivilegePolicy({ accountId: '111122223333', path: PATH, allowedPolicyArns: [], allowedGroups: [] });
    expect(JSON.stringify(bare)).not.toMatch(/AddUserToGroup|RemoveUserFromGroup|GetGroup"|GetPolicy|AttachUserPolicy/);
  });

  it('a disable-policy leaver of a role its trust policy still lets be assumed: the policy wants it locked, the read-back sees who can assume it, and it is not verified', async () => {
    const c = connect({ policy: { protectedAccounts: ['moto-admin'], revokeMode: 'disable' } });
    const roleName = `cgt-role-${randomBytes(4).toString('hex')}`;
    const role: IdentityRef = { type: 'service_account', name: `role/${roleName}` };
    made.push(role);
    const trust = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com', AWS: `arn:aws:iam::${MOTO_ACCOUNT_ID}:root` }, Action: 'sts:AssumeRole' }] });
    await moto.admin.send(new CreateRoleCommand({ RoleName: roleName, Path: PATH, AssumeRolePolicyDocument: trust }));
    await moto.admin.send(new AttachRolePolicyCommand({ RoleName: roleName, PolicyArn: READ_ONLY }));
    const out = await c.leave(role);
    // What the step must find comes from the policy: a disabled identity is locked, a role too.
    expect(out).toMatchObject({ changed: true, expected: DISABLED_STATE });
    expect(out.detail).toMatch(/trust policy still lets AWS:arn:aws:iam::123456789012:root, Service:ec2\.amazonaws\.com assume it/);
    const observed = await c.inspect(role);
    expect(observed).toMatchObject({ exists: true, locked: false, grants: [], attributes: { assumableBy: [`AWS:arn:aws:iam::${MOTO_ACCOUNT_ID}:root`, 'Service:ec2.amazonaws.com'] } });
    expect(verifyAccount(out.expected, observed)).toEqual({ verified: false, mismatches: ['account is not locked/disabled'] });
    // The administrator sees the same: policies gone, the trust policy as it was.
    expect((await moto.admin.send(new ListAttachedRolePoliciesCommand({ RoleName: roleName }))).AttachedPolicies).toEqual([]);
    const doc = (await moto.admin.send(new GetRoleCommand({ RoleName: roleName }))).Role?.AssumeRolePolicyDocument ?? '';
    expect(JSON.parse(doc.startsWith('{') ? doc : decodeURIComponent(doc))).toEqual(JSON.parse(trust));
    // A repeat changes nothing and still says why it is not done.
    expect(await c.leave(role)).toMatchObject({ changed: false, detail: expect.stringMatching(/holds no grants; its trust policy still lets/), expected: DISABLED_STATE });
  });

  it('once an administrator replaces the trust policy with one no one can use, the disable-policy leaver of the role verifies', async () => {
    const c = connect({ policy: { protectedAccounts: ['moto-admin'], revokeMode: 'disable' } });
    const roleName = `cgt-role-${randomBytes(4).toString('hex')}`;
    const role: IdentityRef = { type: 'service_account', name: `role/${roleName}` };
    made.push(role);
    const trust = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] });
    await moto.admin.send(new CreateRoleCommand({ RoleName: roleName, Path: PATH, AssumeRolePolicyDocument: trust }));
    await moto.admin.send(new AttachRolePolicyCommand({ RoleName: roleName, PolicyArn: READ_ONLY }));
    const deny = { Version: '2012-10-17', Statement: [...JSON.parse(trust).Statement, { Effect: 'Deny', Principal: '*', Action: ['sts:AssumeRole', 'sts:AssumeRoleWithSAML', 'sts:AssumeRoleWithWebIdentity'] }] };
    await moto.admin.send(new UpdateAssumeRolePolicyCommand({ RoleName: roleName, PolicyDocument: JSON.stringify(deny) }));
    const out = await c.leave(role);
    expect(out).toMatchObject({ changed: true, expected: DISABLED_STATE, detail: expect.stringMatching(/its trust policy lets no one assume it \(policy: disable\)$/) });
    expect(verifyAccount(out.expected, await c.inspect(role))).toEqual({ verified: true, mismatches: [] });
    expect(await c.leave(role)).toMatchObject({ changed: false, detail: expect.stringMatching(/was already locked with no grants/) });
  });

  it('a disable-policy leaver of a role trusted for sts:Assume* is not verified, nor with a Deny to {"AWS": "*"}; with a Deny to "*" of sts:AssumeRole* it verifies', async () => {
    const c = connect({ policy: { protectedAccounts: ['moto-admin'], revokeMode: 'disable' } });
    // moto checks the actions of UpdateAssumeRolePolicy against the exact names, not those of CreateRole: a role per document.
    const roleTrusting = async (...Statement: unknown[]): Promise<IdentityRef> => {
      const roleName = `cgt-role-${randomBytes(4).toString('hex')}`;
      const role: IdentityRef = { type: 'service_account', name: `role/${roleName}` };
      made.push(role);
      await moto.admin.send(new CreateRoleCommand({ RoleName: roleName, Path: PATH, AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement }) }));
      return role;
    };
    const allow = { Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:Assume*' };
    const open = await roleTrusting(allow);
    const out = await c.leave(open);
    expect(out).toMatchObject({ changed: false, expected: DISABLED_STATE, detail: expect.stringMatching(/trust policy still lets Service:ec2\.amazonaws\.com assume it/) });
    const observed = await c.inspect(open);
    expect(observed).toMatchObject({ exists: true, locked: false, attributes: { assumableBy: ['Service:ec2.amazonaws.com'] } });
    expect(verifyAccount(out.expected, observed)).toEqual({ verified: false, mismatches: ['account is not locked/disabled'] });
    // {"AWS": "*"} is every AWS identity, not the EC2 service: the role is still assumable.
    const awsDenied = await roleTrusting(allow, { Effect: 'Deny', Principal: { AWS: '*' }, Action: 'sts:*' });
    const left = await c.leave(awsDenied);
    expect(left.detail).toMatch(/trust policy still lets Service:ec2\.amazonaws\.com assume it/);
    expect(verifyAccount(left.expected, await c.inspect(awsDenied))).toEqual({ verified: false, mismatches: ['account is not locked/disabled'] });
    // A Deny to everyone of every assume action, written as a glob, locks it.
    const allDenied = await roleTrusting(allow, { Effect: 'Deny', Principal: '*', Action: 'sts:AssumeRole*' });
    const locked = await c.leave(allDenied);
    expect(locked).toMatchObject({ changed: false, detail: expect.stringMatching(/was already locked with no grants/) });
    expect(verifyAccount(locked.expected, await c.inspect(allDenied))).toEqual({ verified: true, mismatches: [] });
  });

  it('reads who a trust policy lets assume a role: only an unconditional Deny to everyone takes an assume action back, and an unreadable policy is never read as locked', () => {
    const doc = (...Statement: unknown[]): string => JSON.stringify({ Version: '2012-10-17', Statement });
    const allowEc2 = { Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' };
    const denyAll = { Effect: 'Deny', Principal: '*', Action: 'sts:AssumeRole' };
    expect(assumableBy(doc(allowEc2))).toEqual(['Service:ec2.amazonaws.com']);
    expect(assumableBy(encodeURIComponent(doc(allowEc2)))).toEqual(['Service:ec2.amazonaws.com']);
    expect(assumableBy(doc(allowEc2, denyAll))).toEqual([]);
    expect(assumableBy(doc({ ...allowEc2, Action: ['sts:AssumeRole', 'sts:TagSession'] }, { ...denyAll, Action: 'sts:*' }))).toEqual([]);
    expect(assumableBy(doc())).toEqual([]);
    expect(assumableBy(doc(allowEc2, { ...denyAll, Action: 'STS:assume?ole*' }))).toEqual([]);
    // A Deny with a condition, for one principal, or written with NotAction may leave someone in: not locked.
    expect(assumableBy(doc(allowEc2, { ...denyAll, Condition: { Bool: { 'aws:SecureTransport': 'false' } } }))).toEqual(['Service:ec2.amazonaws.com']);
    expect(assumableBy(doc(allowEc2, { ...denyAll, Principal: { AWS: `arn:aws:iam::${MOTO_ACCOUNT_ID}:root` } }))).toEqual(['Service:ec2.amazonaws.com']);
    expect(assumableBy(doc(allowEc2, { Effect: 'Deny', Principal: '*', NotAction: 'sts:AssumeRole' }))).toEqual(['Service:ec2.amazonaws.com']);
    // Another assume action still allowed, or the wildcard allowed past a Deny of one action: still assumable.
    expect(assumableBy(doc({ ...allowEc2, Action: 'sts:AssumeRoleWithWebIdentity', Principal: { Federated: 'cognito-identity.amazonaws.com' } }, denyAll))).toEqual(['Federated:cognito-identity.amazonaws.com']);
    expect(assumableBy(doc({ ...allowEc2, Action: 'sts:*' }, denyAll))).toEqual(['Service:ec2.amazonaws.com']);
    expect(assumableBy('{not json')).toEqual(['unreadable trust policy']);
  });

  it('an Action is an IAM glob: sts:AssumeRole*, sts:Assume*, sts:A*, ? wildcards and any case allow assuming the role, and a Deny written so takes them back', () => {
    const doc = (...Statement: unknown[]): string => JSON.stringify({ Version: '2012-10-17', Statement });
    const allow = (Action: unknown): unknown => ({ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action });
    for (const action of ['sts:AssumeRole*', 'sts:Assume*', 'sts:A*', 's*:*', 'sts:AssumeRol?', 'sts:AssumeRoleWith????', 'STS:ASSUMEROLE', 'sts:assumerolewithwebidentity', ['sts:TagSession', 'sts:Assume*']]) {
      expect([action, assumableBy(doc(allow(action)))]).toEqual([action, ['Service:ec2.amazonaws.com']]);
    }
    // Globs that match no assume action: nobody.
    for (const action of ['sts:AssumeRole?', 'sts:TagSession', 'sts:Get*', 'iam:*', 'sts:AssumeRoleWithSAML?', 'xsts:AssumeRole']) {
      expect([action, assumableBy(doc(allow(action)))]).toEqual([action, []]);
    }
    // A Deny glob takes back what it matches, and only that.
    const principalStar = { Effect: 'Deny', Principal: '*' };
    expect(assumableBy(doc(allow('sts:Assume*'), { ...principalStar, Action: 'sts:AssumeRole*' }))).toEqual([]);
    expect(assumableBy(doc(allow('sts:*'), { ...principalStar, Action: ['sts:assume*'] }))).toEqual([]);
    expect(assumableBy(doc(allow('sts:AssumeRole*'), { ...principalStar, Action: 'sts:AssumeRole' }))).toEqual(['Service:ec2.amazonaws.com']);
    expect(assumableBy(doc(allow('sts:AssumeRole*'), { ...principalStar, Action: 'sts:AssumeRoleWith*' }))).toEqual(['Service:ec2.amazonaws.com']);
    // An Action that is not a string is not read as naming nothing.
    expect(assumableBy(doc(allow([{ not: 'a string' }])))).toEqual(['Service:ec2.amazonaws.com']);
  });

  it('a trust policy document that is missing, empty or not an object reads as assumable, never as locked', () => {
    expect(assumableBy(undefined)).toEqual(['unreadable trust policy']);
    expect(assumableBy('')).toEqual(['unreadable trust policy']);
    expect(assumableBy('null')).toEqual(['unreadable trust policy']);
    expect(assumableBy('[]')).toEqual(['unreadable trust policy']);
    expect(assumableBy(JSON.stringify({ Statement: ['Allow'] }))).toEqual(['unreadable trust policy']);
  });

  it('a Deny to {"AWS": "*"} takes assuming back from AWS principals only; a service or a federated caller stays in until a Deny to "*" or to its own type', () => {
    const doc = (...Statement: unknown[]): string => JSON.stringify({ Version: '2012-10-17', Statement });
    const allow = { Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com', Federated: 'cognito-identity.amazonaws.com', AWS: `arn:aws:iam::${MOTO_ACCOUNT_ID}:root` }, Action: 'sts:Assume*' };
    const deny = (Principal: unknown): unknown => ({ Effect: 'Deny', Principal, Action: 'sts:*' });
    expect(assumableBy(doc(allow, deny({ AWS: '*' })))).toEqual(['Federated:cognito-identity.amazonaws.com', 'Service:ec2.amazonaws.com']);
    expect(assumableBy(doc(allow, deny({ AWS: ['*'] }), deny({ Service: '*' })))).toEqual(['Federated:cognito-identity.amazonaws.com']);
    expect(assumableBy(doc(allow, deny({ AWS: '*', Service: '*', Federated: '*' })))).toEqual([]);
    expect(assumableBy(doc(allow, deny('*')))).toEqual([]);
    // Principal "*" in an Allow is everyone, anonymous callers too: a Deny to {"AWS": "*"} leaves it in.
    expect(assumableBy(doc({ ...allow, Principal: '*' }, deny({ AWS: '*' })))).toEqual(['AWS:*']);
    expect(assumableBy(doc({ ...allow, Principal: '*' }, deny('*')))).toEqual([]);
  });

  it('a role under the disable policy is held to the policy as written: no deviation lowers "locked" to "stripped"', () => {
    const c = connect({ policy: { protectedAccounts: ['moto-admin'], revokeMode: 'disable' } });
    expect(revokeTarget(c.grammar, { type: 'service_account', name: 'role/deployer' }, 'disable')).toEqual({ leaves: DISABLED_STATE });
    expect(revokeTarget(c.grammar, { type: 'service_account', name: 'role/deployer' }, 'delete')).toEqual({ leaves: GONE });
    expect(revokeTarget(c.grammar, { type: 'service_account', name: 'svc-billing' }, 'disable').deviation).toBeUndefined();
  });

  it.each(['delete', 'disable'] as const)('a %s-policy leaver of a role that does not exist is done, already absent, and its read-back verifies', async (mode) => {
    const c = connect({ policy: { protectedAccounts: ['moto-admin'], revokeMode: mode } });
    const role: IdentityRef = { type: 'service_account', name: `role/cgt-gone-${randomBytes(4).toString('hex')}` };
    const out = await c.leave(role);
    expect(out).toEqual({ changed: false, detail: `role '${role.name.slice(5)}' was already absent`, expected: GONE });
    expect(verifyAccount(out.expected!, await c.inspect(role))).toEqual({ verified: true, mismatches: [] });
  });

  it('grammar: exact canonical grant text, policies by exact ARN or path prefix, groups in the allow-list spelling, protected names in any case', () => {
    const g = awsIamConnectorType.grammar(config({ allowedGroups: ['Readers'] }));
    expect(g.parseGrant(`policy=${READ_ONLY}`)).toEqual({ canonical: [`policy=${READ_ONLY}`] });
    expect(g.parseGrant(`policy=arn:aws:iam::${MOTO_ACCOUNT_ID}:policy/changegate/team/x`)).toEqual({ canonical: [`policy=arn:aws:iam::${MOTO_ACCOUNT_ID}:policy/changegate/team/x`] });
    expect(g.parseGrant(`policy=arn:aws:iam::${MOTO_ACCOUNT_ID}:policy/other/x`)).toHaveProperty('problem');
    expect(g.parseGrant('policy=arn:aws:iam::aws:policy/job-function/ViewOnlyAccess')).toHaveProperty('problem');
    expect(g.parseGrant('group=readers')).toEqual({ canonical: ['group=Readers'] });
    expect(g.validateIdentity({ type: 'service_account', name: 'svc-billing' })).toEqual([]);
    expect(g.validateIdentity({ type: 'service_account', name: 'role/deployer' })).toEqual([]);
    expect(g.validateIdentity({ type: 'service_account', name: CONNECTOR_USER.toUpperCase() })[0]?.message).toMatch(/protected/);
    expect(g.validateIdentity({ type: 'service_account', name: 'svc', host: '%' })[0]?.path).toBe('identity.host');
  });

  it('config: credentials only by environment variable name, a managed path below the root, policy allow-list entries shaped as ARNs', () => {
    const base = { name: 'x', type: 'aws-iam', userName: 'gw', accessKeyIdEnv: 'K', secretAccessKeyEnv: 'S' };
    expect(awsIamInstanceSchema.parse(base)).toMatchObject({ path: '/changegate/', region: 'us-east-1', allowedPolicyArns: [], allowedGroups: [] });
    expect(awsIamInstanceSchema.safeParse({ ...base, secretAccessKey: 'inline' }).success).toBe(false);
    expect(awsIamInstanceSchema.safeParse({ ...base, path: '/' }).success).toBe(false);
    expect(awsIamInstanceSchema.safeParse({ ...base, path: '/a/../' }).success).toBe(false);
    expect(awsIamInstanceSchema.safeParse({ ...base, allowedPolicyArns: ['*'] }).success).toBe(false);
    expect(awsIamInstanceSchema.safeParse({ ...base, allowedPolicyArns: ['arn:aws:iam::aws:policy/ReadOnly*'] }).success).toBe(false);
    expect(awsIamInstanceSchema.safeParse({ ...base, allowedPolicyArns: ['arn:aws:iam::123456789012:policy/team/*'] }).success).toBe(true);
  });

  it('an unreachable endpoint fails as a transient error naming the call, never as a refusal', async () => {
    const c = harness.unreachable();
    try {
      const err = (await c.inspect({ type: 'service_account', name: 'svc-x' }).then(() => null, (e: unknown) => e)) as Error & { transient?: boolean };
      expect(err).not.toBeInstanceOf(ConnectorRefusal);
      expect(err.transient).toBe(true);
      expect(err.message).toMatch(/GetUser failed: .*ECONNREFUSED/);
    } finally {
      await c.close();
    }
  });

  it('a secret that is not a well-formed key pair does not authenticate', async () => {
    const c = harness.connector() as UnderPolicy<AwsIamConnector>;
    const id = fresh();
    await c.provision(id, [`group=${GROUP}`]);
    for (const s of [Secret.generate(), new Secret('{"accessKeyId":"x","secretAccessKey":"y"}'), new Secret('null')]) {
      expect(await c.authenticates(id, s)).toBe(false);
    }
  });
});
