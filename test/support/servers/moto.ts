import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CreateAccessKeyCommand, CreateUserCommand, GetUserCommand, IAMClient, PutUserPolicyCommand } from '@aws-sdk/client-iam';
import { freePort, spawnServer, type SpawnedServer } from './process';

/** moto's default account: every ARN in its IAM carries it. */
export const MOTO_ACCOUNT_ID = '123456789012';

export interface Moto {
  endpoint: string;
  /** An IAM user with `Action: * on *`: the tests' administrator, never the connector. */
  admin: IAMClient;
  /** A client signing with the given key pair, against this moto. */
  clientFor(accessKeyId: string, secretAccessKey: string): IAMClient;
  stop(): Promise<void>;
}

/** Requests moto serves without authentication: exactly the three that create the administrator and its key. */
const BOOTSTRAP_REQUESTS = 3;

/**
 * Starts moto's server on a free port with IAM-like access control: after the first BOOTSTRAP_REQUESTS requests
 * it checks every request's SigV4 signature against the access keys it holds and evaluates the caller's IAM
 * policies (actions only: moto ignores Resource and Condition for IAM's own actions). AWS managed policies
 * (ReadOnlyAccess, …) are loaded so tickets can name them.
 */
export async function startMoto(): Promise<Moto> {
  const bin = join(__dirname, '../../../.venv/bin/moto_server');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run 'bash scripts/setup.sh' (scripts/setup.d/70-moto.sh installs moto)`);
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const server: SpawnedServer = await spawnServer(
    'moto_server',
    bin,
    ['-H', '127.0.0.1', '-p', String(port)],
    // moto-api is moto's own control plane: it does not count towards INITIAL_NO_AUTH_ACTION_COUNT.
    async () => (await fetch(`${endpoint}/moto-api/`)).ok,
    {
      env: {
        ...process.env,
        INITIAL_NO_AUTH_ACTION_COUNT: String(BOOTSTRAP_REQUESTS),
        MOTO_IAM_LOAD_MANAGED_POLICIES: 'true',
        AWS_ACCESS_KEY_ID: 'unused',
        AWS_SECRET_ACCESS_KEY: 'unused',
      },
    },
  );
  const clientFor = (accessKeyId: string, secretAccessKey: string) =>
    new IAMClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 });
  try {
    const boot = clientFor('AKIABOOTSTRAP0000000', 'bootstrap');
    await boot.send(new CreateUserCommand({ UserName: 'moto-admin' }));
    await boot.send(new PutUserPolicyCommand({
      UserName: 'moto-admin',
      PolicyName: 'administrator',
      PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }),
    }));
    const key = (await boot.send(new CreateAccessKeyCommand({ UserName: 'moto-admin' }))).AccessKey;
    boot.destroy();
    if (!key?.AccessKeyId || !key.SecretAccessKey) throw new Error('moto returned no access key for the administrator');
    const admin = clientFor(key.AccessKeyId, key.SecretAccessKey);
    // From here on moto must authenticate: an unknown key has to be refused, or every least-privilege test is moot.
    const unknown = clientFor('AKIAUNKNOWN000000000', 'nope');
    const refused = await unknown.send(new GetUserCommand({})).then(() => null, (e: { name?: string }) => e.name);
    unknown.destroy();
    if (refused !== 'InvalidClientTokenId') throw new Error(`moto did not enforce authentication (unknown key got: ${refused ?? 'success'})`);
    return {
      endpoint,
      admin,
      clientFor,
      stop: async () => {
        admin.destroy();
        await server.stop();
      },
    };
  } catch (err) {
    await server.stop();
    throw new Error(`moto bootstrap failed:\n${server.output()}`, { cause: err });
  }
}
