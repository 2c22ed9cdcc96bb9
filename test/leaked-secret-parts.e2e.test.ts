import { createHmac, randomBytes } from 'node:crypto';
import { CreateAccessKeyCommand, CreateGroupCommand, CreateUserCommand, ListAccessKeysCommand, PutUserPolicyCommand } from '@aws-sdk/client-iam';
import axios from 'axios';
import { leastPrivilegePolicy, type IamPolicyDocument } from '../src/connectors/aws-iam/aws-iam-policy';
import { fingerprintOf } from '../src/connectors/secret';
import { MOTO_ACCOUNT_ID, type Moto, startMoto } from './support/servers/moto';
import { type OpenBao, setupVaultFixture, startOpenBao, type VaultFixture, vaultConnectorEntry } from './support/servers/openbao';
import { type Stack, startStack, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

/**
 * A leak of one part of a structured credential: an AWS access key pair the gateway rotated into OpenBao (as the JSON
 * {accessKeyId, secretAccessKey}) is reported by a scanner that found only the secret access key. The delivery's
 * evidence holds a fingerprint per secret-bearing part (never the value), so the report matches, and the emergency
 * change rotates the key on moto's IAM: a new key delivered and verified, the leaked one deactivated. The key id alone,
 * which is not a secret, and a value the gateway never delivered match nothing.
 */
describe('exposed secrets: one part of a structured credential is matched and rotated', () => {
  const SECRET = randomBytes(24).toString('base64url');
  const AWS = 'aws-leak';
  const PATH = '/changegate/';
  let moto: Moto;
  let bao: OpenBao;
  let fx: VaultFixture;
  let stack: Stack;

  beforeAll(async () => {
    [moto, bao] = await Promise.all([startMoto(), startOpenBao()]);
    fx = await setupVaultFixture(bao);
    // The connector user holds the documented least-privilege policy (moto evaluates IAM's own actions on *).
    const GROUP = 'cg-leak-readers';
    await moto.admin.send(new CreateGroupCommand({ GroupName: GROUP }));
    const documented = leastPrivilegePolicy({ accountId: MOTO_ACCOUNT_ID, path: PATH, allowedPolicyArns: [], allowedGroups: [GROUP] });
    const evaluable: IamPolicyDocument = { Version: documented.Version, Statement: documented.Statement.map((st) => ({ ...st, Resource: ['*'] })) };
    await moto.admin.send(new CreateUserCommand({ UserName: 'changegate-connector' }));
    await moto.admin.send(new PutUserPolicyCommand({ UserName: 'changegate-connector', PolicyName: 'changegate-connector', PolicyDocument: JSON.stringify(evaluable) }));
    const key = (await moto.admin.send(new CreateAccessKeyCommand({ UserName: 'changegate-connector' }))).AccessKey!;
    process.env.CG_TEST_LEAKP_AWS_KEY_ID = key.AccessKeyId!;
    process.env.CG_TEST_LEAKP_AWS_SECRET = key.SecretAccessKey!;
    stack = await startStack({
      extraConnectors: [
        vaultConnectorEntry(bao, fx, 'CG_TEST_LEAKP_VAULT_TOKEN'),
        {
          name: AWS, type: 'aws-iam', endpoint: moto.endpoint, region: 'us-east-1', path: PATH, userName: 'changegate-connector',
          accessKeyIdEnv: 'CG_TEST_LEAKP_AWS_KEY_ID', secretAccessKeyEnv: 'CG_TEST_LEAKP_AWS_SECRET', allowedGroups: [GROUP], policy: { protectedAccounts: ['moto-admin'] },
        },
      ],
      policy: { version: 1, emergency: [{ system: AWS, kinds: ['rotate'] }] },
      leaks: { webhookSecret: SECRET },
    });
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
    await fx?.cleanup();
    await bao?.stop();
    await moto?.stop();
  });

  const report = (body: unknown) => {
    const raw = Buffer.from(JSON.stringify(body));
    const sig = `sha256=${createHmac('sha256', SECRET).update(raw).digest('hex')}`;
    return axios.post(`${stack.apiUrl}/webhooks/secret-scanning`, raw, { headers: { 'content-type': 'application/json', 'x-hub-signature-256': sig }, validateStatus: () => true });
  };
  const leakRows = (value: string) =>
    waitFor('the leak evidence', async () => {
      const rows = await stack.evidence.list(`leak:${fingerprintOf(value).slice('sha256:'.length)}`);
      return rows.length > 0 ? rows : null;
    }, 30_000);
  const served = async (path: string) =>
    JSON.parse((await bao.root<{ data: { data: { value: string } } }>('GET', `secret/data/${fx.kvPrefix}/${path}`)).body.data.data.value) as { accessKeyId: string; secretAccessKey: string };
  const keys = async (user: string) =>
    Object.fromEntries(((await moto.admin.send(new ListAccessKeysCommand({ UserName: user }))).AccessKeyMetadata ?? []).map((k) => [k.AccessKeyId, k.Status]));

  it('a report of the secret access key alone opens an emergency rotation; the key id alone and a value never delivered match nothing', async () => {
    const user = `leak-${randomBytes(4).toString('hex')}`;
    await moto.admin.send(new CreateUserCommand({ UserName: user, Path: PATH }));
    const path = `apps/${user}/aws`;
    const first = uniqueTicketNumber();
    stack.sim.createChange({
      number: first, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'rotate', system: AWS, identity: { type: 'service_account', name: user }, deliverTo: { system: 'vault-local', path } }]),
    });
    const rotated = await waitFor('the first rotation', async () => (await stack.evidence.list(`servicenow:${first}`)).find((r) => r.outcome === 'rotated'), 60_000);
    const leaked = await served(path);
    // The delivery's evidence holds the secret part's fingerprint, and neither value.
    expect(rotated.observedState).toMatchObject({ fingerprint: fingerprintOf(JSON.stringify(leaked)), partFingerprints: { secretAccessKey: fingerprintOf(leaked.secretAccessKey) } });
    expect(Object.keys((rotated.observedState as { partFingerprints: object }).partFingerprints)).toEqual(['secretAccessKey']);
    expect(JSON.stringify(rotated)).not.toContain(leaked.secretAccessKey);

    // Negative controls: the key id is not a secret part, and a value the gateway never delivered is nobody's.
    const never = randomBytes(30).toString('base64');
    for (const value of [leaked.accessKeyId, never]) {
      expect((await report({ secret: value, type: 'aws_secret_access_key', location: 'a control' })).status).toBe(202);
      expect((await leakRows(value))[0]).toMatchObject({ outcome: 'unmatched', observedState: { matched: false } });
    }

    expect((await report({ secret: leaked.secretAccessKey, type: 'aws_secret_access_key', location: 'config/prod.env in acme/billing@4f1c2e9' })).status).toBe(202);
    const [row] = await leakRows(leaked.secretAccessKey);
    expect(row).toMatchObject({ outcome: 'rotation-opened', observedState: { deliveredBy: `servicenow:${first}`, matchedPart: 'secretAccessKey', change: { source: 'servicenow' } } });
    const number = String((row?.observedState as { change: { key: string } }).change.key);
    const [change] = (await axios.get(`${stack.simUrl}/api/now/table/change_request`, { auth: { username: TEST_ENV.snUser, password: TEST_ENV.snPassword }, params: { sysparm_query: `number=${number}` } })).data.result as Array<Record<string, string>>;
    expect(change).toMatchObject({ type: 'emergency', correlation_id: `changegate-leak-${fingerprintOf(leaked.secretAccessKey).slice('sha256:'.length)}` });
    expect(change?.description).toContain('the secretAccessKey part of the credential');
    expect(JSON.stringify(change)).not.toContain(leaked.secretAccessKey);

    await waitFor('the emergency rotation verified', async () => (await stack.evidence.list(`servicenow:${number}`)).find((r) => r.outcome === 'rotated' && r.verified), 60_000);
    const now = await served(path);
    expect(now.accessKeyId).not.toBe(leaked.accessKeyId);
    // Read back on IAM: the leaked key is deactivated, the delivered one is the active key.
    expect(await keys(user)).toEqual({ [leaked.accessKeyId]: 'Inactive', [now.accessKeyId]: 'Active' });
  }, 180_000);
});
