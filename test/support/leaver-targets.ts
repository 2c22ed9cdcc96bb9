import { randomBytes, X509Certificate } from 'node:crypto';
import {
  AddUserToGroupCommand, AttachRolePolicyCommand, AttachUserPolicyCommand, CreateAccessKeyCommand, CreateGroupCommand, CreateLoginProfileCommand,
  CreateRoleCommand, CreateUserCommand, EnableMFADeviceCommand, GetLoginProfileCommand, GetRoleCommand, GetUserCommand, ListAccessKeysCommand,
  PutUserPolicyCommand, UploadSigningCertificateCommand, UploadSSHPublicKeyCommand,
} from '@aws-sdk/client-iam';
import { Attribute, Change } from 'ldapts';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { IdentityRef } from '../../src/actions/identity-action';
import { leastPrivilegePolicy, type IamPolicyDocument } from '../../src/connectors/aws-iam/aws-iam-policy';
import type { RevokeMode } from '../../src/connectors/connector';
import { escapeDnValue } from '../../src/connectors/ldap/ldap-grammar';
import type { ConnectorsFile } from '../../src/connectors/registry';
import { selfSignedCertificate, slappasswd, sshPublicKey } from './credentials';
import { LDAP_BASE_DN, startLdapServer } from './servers/ldap';
import { MOTO_ACCOUNT_ID, startMoto } from './servers/moto';
import { setupVaultFixture, startOpenBao } from './servers/openbao';
import { startPostgres } from './servers/postgres';
import { useRabbitmq } from './servers/rabbitmq';
import { REDIS_ADMIN, startRedis } from './servers/redis';
import { ADMIN_USER, GATEWAY_USER, type ScimAdmin, startScimProvider } from './servers/scim';
import { TEST_ENV } from './test-env';

/** The eight connector types, in the order the registry lists them. */
export const CONNECTOR_TYPES = ['mysql', 'postgres', 'redis', 'rabbitmq', 'ldap', 'scim', 'aws-iam', 'vault'] as const;
export type ConnectorTypeName = (typeof CONNECTOR_TYPES)[number];

/** What an administrator sees of an identity, read past the connector. */
export interface AdminView {
  exists: boolean;
  /** Cannot authenticate (locked, switched off, no active credential, soft-deleted, revoked); where the target has the notion. */
  locked?: boolean;
}

/** One kind of identity on one target (a Vault KV secret, a Vault certificate, an IAM role, …). */
export interface IdentityKind {
  label: string;
  /** Made as an administrator, behind the gateway's back, holding a credential of every kind the target keeps. */
  present(): Promise<IdentityRef>;
  /** A name the grammar accepts that the target does not hold. */
  absent(): IdentityRef;
  view(identity: IdentityRef): Promise<AdminView>;
  /**
   * A policy the gateway cannot carry out on a present identity of this kind, and the read-back's mismatch that says
   * so: its leaver must fail "not verified" and keep the change from closing.
   */
  unverifiable?: { mode: RevokeMode; mismatch: string };
}

/** The usual shape: a fresh name, and a seed that creates it. */
function kind(label: string, fresh: () => IdentityRef, seed: (id: IdentityRef) => Promise<void>, view: (id: IdentityRef) => Promise<AdminView>): IdentityKind {
  return {
    label,
    async present() {
      const id = fresh();
      await seed(id);
      return id;
    },
    absent: fresh,
    view,
  };
}

export interface LeaverTarget {
  type: ConnectorTypeName;
  /** The connector configuration entry `<type>-<mode>`; its secrets are in process.env. */
  entry(mode: RevokeMode): ConnectorsFile['connectors'][number];
  kinds: IdentityKind[];
}

export interface LeaverTargets {
  targets: Map<ConnectorTypeName, LeaverTarget>;
  /** The SCIM provider's administrator, for set-ups a test needs beyond seeding. */
  scimAdmin: ScimAdmin;
  /** Every entry, both policies of all eight types, for startStack({ extraConnectors }). */
  entries(): ConnectorsFile['connectors'];
  stop(): Promise<void>;
}

/** The present identities a policy cannot be carried out on (IdentityKind.unverifiable), known before any target starts. */
export const UNVERIFIABLE_LEAVERS = [
  // The gateway may not replace a trust policy (no iam:UpdateAssumeRolePolicy).
  { type: 'aws-iam', kind: 'role', mode: 'disable', mismatch: 'account is not locked/disabled' },
] as const satisfies ReadonlyArray<{ type: ConnectorTypeName; kind: string; mode: RevokeMode; mismatch: string }>;

const hex = (): string => randomBytes(5).toString('hex');
const name = (type: ConnectorTypeName, mode: RevokeMode): string => `${type}-${mode}`;
/** Secrets reach the registry the way they reach it in production: named environment variables. */
const setEnv = (key: string, value: string): string => {
  process.env[key] = value;
  return key;
};

/**
 * Starts (or reaches) the real target of each of the eight connectors, with the connector's documented least-privilege
 * credential, and says how to seed identities and look at them as an administrator. Private servers (PostgreSQL,
 * Redis, slapd, the SCIM provider, moto, OpenBao) go away with stop(); on the machine's shared MariaDB and RabbitMQ,
 * stop() removes what was made.
 */
export async function startLeaverTargets(): Promise<LeaverTargets> {
  const stops: Array<() => Promise<void>> = [];
  const targets = new Map<ConnectorTypeName, LeaverTarget>();
  let scimAdmin: ScimAdmin | undefined;
  const add = (t: LeaverTarget): void => {
    targets.set(t.type, t);
  };
  try {
    const [pgServer, redis, ldap, scim, moto, bao] = await Promise.all([startPostgres(), startRedis(), startLdapServer(), startScimProvider(), startMoto(), startOpenBao()]);
    stops.push(() => pgServer.stop(), () => redis.stop(), () => ldap.stop(), () => scim.stop(), () => moto.stop(), () => bao.stop());

    // MariaDB: the suite's own least-privilege connector account (global-setup), its target databases.
    const maria = await mysql.createConnection({ uri: TEST_ENV.adminUrl });
    const mariaMade: string[] = [];
    stops.push(async () => {
      for (const n of mariaMade) await maria.query('DROP USER IF EXISTS ?@?', [n, '%']);
      await maria.end();
    });
    add({
      type: 'mysql',
      entry: (mode) => ({
        name: name('mysql', mode), type: 'mysql', host: '127.0.0.1', port: TEST_ENV.mariadbPort, user: TEST_ENV.connectorUser, passwordEnv: 'CG_TEST_CONNECTOR_PASSWORD',
        policy: { protectedAccounts: ['root', 'mysql', 'mariadb.sys'], revokeMode: mode },
      }),
      kinds: [kind('account', () => {
          const id = { type: 'service_account' as const, name: `lv_${hex()}`, host: '%' };
          mariaMade.push(id.name);
          return id;
        },
        async (id) => {
          await maria.query('CREATE USER ?@? IDENTIFIED BY ?', [id.name, '%', randomBytes(12).toString('hex')]);
          await maria.query(`GRANT SELECT ON \`${TEST_ENV.targetDatabases[0]}\`.* TO ?@?`, [id.name, '%']);
        },
        async (id) => {
          // MariaDB keeps the lock flag in mysql.global_priv's JSON; JSON_VALUE reads a JSON true as 1.
          const [rows] = await maria.query<mysql.RowDataPacket[]>("SELECT JSON_VALUE(Priv, '$.account_locked') AS locked FROM mysql.global_priv WHERE User = ? AND Host = ?", [id.name, '%']);
          return rows.length === 0 ? { exists: false } : { exists: true, locked: ['1', 'true'].includes(String(rows[0]?.locked)) };
        },
      )],
    });

    // PostgreSQL: the connector role as postgres-connector.ts documents it, one managed database with one table.
    const PG_CONNECTOR = 'changegate_connector';
    const pgPassword = randomBytes(18).toString('hex');
    await pgServer.adminQuery('postgres', 'CREATE DATABASE cg_app');
    await pgServer.adminQuery('postgres', `
      REVOKE CONNECT ON DATABASE cg_app FROM PUBLIC;
      CREATE ROLE cg_orphans NOLOGIN;
      CREATE ROLE ${PG_CONNECTOR} LOGIN CREATEROLE PASSWORD ${pg.escapeLiteral(pgPassword)};
      GRANT pg_signal_backend TO ${PG_CONNECTOR};
      GRANT cg_orphans TO ${PG_CONNECTOR};
      GRANT CONNECT ON DATABASE cg_app TO ${PG_CONNECTOR} WITH GRANT OPTION;`);
    await pgServer.adminQuery('cg_app', `CREATE TABLE public.orders (id int); GRANT SELECT ON public.orders TO ${PG_CONNECTOR} WITH GRANT OPTION;`);
    add({
      type: 'postgres',
      entry: (mode) => ({
        name: name('postgres', mode), type: 'postgres', host: pgServer.host, port: pgServer.port, database: 'postgres', databases: ['cg_app'], user: PG_CONNECTOR,
        passwordEnv: setEnv('CG_LV_PG_PASSWORD', pgPassword), ownedObjects: 'reassign', reassignTo: 'cg_orphans', policy: { protectedAccounts: [], revokeMode: mode },
      }),
      kinds: [kind('role', () => ({ type: 'service_account', name: `lv_${hex()}` }),
        async (id) => {
          const role = pg.escapeIdentifier(id.name);
          await pgServer.adminQuery('postgres', `CREATE ROLE ${role} LOGIN PASSWORD ${pg.escapeLiteral(randomBytes(12).toString('base64url'))}`);
          // Granted as the connector: PostgreSQL revokes per grantor.
          await pgServer.adminQuery('cg_app', `SET ROLE ${PG_CONNECTOR}; GRANT SELECT ON public.orders TO ${role}`);
        },
        async (id) => {
          const rows = await pgServer.adminQuery<{ can_login: boolean }>('postgres', 'SELECT rolcanlogin AS can_login FROM pg_roles WHERE rolname = $1', [id.name]);
          return rows.length === 0 ? { exists: false } : { exists: true, locked: !rows[0]?.can_login };
        },
      )],
    });

    // Redis: the ACL user and rules redis-connector.ts documents.
    const REDIS_CONNECTOR = 'changegate_connector';
    const redisPassword = await redis.createUser(REDIS_CONNECTOR, [
      'resetkeys', 'resetchannels', '-@all', '+acl|setuser', '+acl|deluser', '+acl|getuser', '+acl|list', '+acl|cat', '+client|list', '+client|kill',
    ]);
    add({
      type: 'redis',
      entry: (mode) => ({
        name: name('redis', mode), type: 'redis', host: redis.host, port: redis.port, user: REDIS_CONNECTOR, passwordEnv: setEnv('CG_LV_REDIS_PASSWORD', redisPassword),
        policy: { protectedAccounts: [REDIS_ADMIN], revokeMode: mode },
      }),
      kinds: [kind('ACL user', () => ({ type: 'service_account', name: `lv_${hex()}` }),
        async (id) => {
          await redis.createUser(id.name, ['~lv:*', '+get', `>${randomBytes(12).toString('base64url')}`]);
        },
        async (id) => {
          const reply = (await redis.admin.call('ACL', 'GETUSER', id.name)) as unknown[] | null;
          if (!reply) return { exists: false };
          const flags = (reply[reply.indexOf('flags') + 1] as string[]).map(String);
          return { exists: true, locked: flags.includes('off') };
        },
      )],
    });

    // RabbitMQ: the machine's broker; the connector user has the administrator tag and no vhost permissions.
    const broker = await useRabbitmq();
    const rabbitConnector = `lv_conn_${hex()}`;
    const rabbitPassword = await broker.createUser(rabbitConnector, ['administrator']);
    const rabbitMade: string[] = [];
    stops.push(async () => {
      for (const n of rabbitMade) await broker.deleteUser(n);
      await broker.deleteUser(rabbitConnector);
      await broker.stop();
    });
    add({
      type: 'rabbitmq',
      entry: (mode) => ({
        name: name('rabbitmq', mode), type: 'rabbitmq', url: broker.url, user: rabbitConnector, passwordEnv: setEnv('CG_LV_RABBITMQ_PASSWORD', rabbitPassword),
        amqpPort: broker.amqpPort, policy: { protectedAccounts: ['guest'], revokeMode: mode },
      }),
      kinds: [kind('user', () => {
          const id = { type: 'service_account' as const, name: `lv_${hex()}` };
          rabbitMade.push(id.name);
          return id;
        },
        async (id) => {
          await broker.createUser(id.name, ['monitoring']);
          await broker.admin.put(`/permissions/${encodeURIComponent(broker.vhost)}/${encodeURIComponent(id.name)}`, { configure: '^lv\\.', write: '^lv\\.', read: '^lv\\.' });
        },
        async (id) => {
          const res = await broker.admin.get(`/users/${encodeURIComponent(id.name)}`);
          return res.status === 404 ? { exists: false } : { exists: true, locked: (res.data as { password_hash: string }).password_hash === '' };
        },
      )],
    });

    // LDAP: a private slapd with the demo's ACLs and the connector's own entry.
    const personDn = (id: IdentityRef): string => `uid=${escapeDnValue(id.name)},ou=people,${LDAP_BASE_DN}`;
    add({
      type: 'ldap',
      entry: (mode) => ({
        name: name('ldap', mode), type: 'ldap', url: ldap.url, baseDn: LDAP_BASE_DN, bindDn: ldap.connectorDn, passwordEnv: setEnv('CG_LV_LDAP_PASSWORD', ldap.connectorPassword),
        policy: { protectedAccounts: [], revokeMode: mode },
      }),
      kinds: [kind('person', () => ({ type: 'person', name: `lv-${hex()}` }),
        async (id) => {
          await ldap.asAdmin(async (admin) => {
            await admin.add(personDn(id), { objectClass: ['inetOrgPerson'], uid: id.name, cn: id.name, sn: id.name, userPassword: slappasswd(randomBytes(12).toString('base64url')) });
            await admin.modify(`cn=cg-readers,ou=groups,${LDAP_BASE_DN}`, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [personDn(id)] }) }));
          });
        },
        async (id) =>
          ldap.asAdmin(async (admin) => {
            const { searchEntries } = await admin.search(`ou=people,${LDAP_BASE_DN}`, { filter: `(uid=${escapeDnValue(id.name)})`, attributes: ['pwdAccountLockedTime'] });
            const entry = searchEntries[0];
            if (!entry) return { exists: false };
            // A requested attribute the entry does not hold comes back empty, not absent: locked means it has a value.
            const lockedAt = ([] as unknown[]).concat(entry.pwdAccountLockedTime ?? []).map(String).filter((v) => v !== '');
            return { exists: true, locked: lockedAt.length > 0 };
          }),
      )],
    });

    // SCIM: the provider the connector tests use, with one grantable group.
    scimAdmin = scim.admin;
    await scim.admin.createGroup('cg-readers');
    add({
      type: 'scim',
      entry: (mode) => ({
        name: name('scim', mode), type: 'scim', baseUrl: scim.url, tokenEnv: setEnv('CG_LV_SCIM_TOKEN', scim.tokens.gateway), ownUserName: GATEWAY_USER,
        policy: { protectedAccounts: [ADMIN_USER], revokeMode: mode },
      }),
      kinds: [kind('user', () => ({ type: 'service_account', name: `lv.${hex()}@scim.test` }),
        async (id) => {
          const userId = await scim.admin.createUser(id.name, { password: randomBytes(12).toString('base64url') });
          await scim.admin.addMember((await scim.admin.findGroup('cg-readers'))!.id, userId);
        },
        async (id) => {
          const user = await scim.admin.findUser(id.name);
          return user ? { exists: true, locked: user.active === false } : { exists: false };
        },
      )],
    });

    // AWS IAM on moto: a connector user holding the documented least-privilege policy (moto sees IAM resources as *).
    const IAM_PATH = '/changegate/';
    const READ_ONLY = 'arn:aws:iam::aws:policy/ReadOnlyAccess';
    const GROUP = 'cg-readers';
    const iamConnector = 'changegate-connector';
    await moto.admin.send(new CreateGroupCommand({ GroupName: GROUP }));
    const documented = leastPrivilegePolicy({ accountId: MOTO_ACCOUNT_ID, path: IAM_PATH, allowedPolicyArns: [READ_ONLY], allowedGroups: [GROUP] });
    const evaluable: IamPolicyDocument = { Version: documented.Version, Statement: documented.Statement.map((st) => ({ ...st, Resource: ['*'] })) };
    await moto.admin.send(new CreateUserCommand({ UserName: iamConnector }));
    await moto.admin.send(new PutUserPolicyCommand({ UserName: iamConnector, PolicyName: 'changegate-connector', PolicyDocument: JSON.stringify(evaluable) }));
    const iamKey = (await moto.admin.send(new CreateAccessKeyCommand({ UserName: iamConnector }))).AccessKey!;
    const noSuch = (e: unknown): null => {
      if ((e as { name?: string }).name === 'NoSuchEntityException') return null;
      throw e;
    };
    add({
      type: 'aws-iam',
      entry: (mode) => ({
        name: name('aws-iam', mode), type: 'aws-iam', endpoint: moto.endpoint, region: 'us-east-1', path: IAM_PATH, userName: iamConnector,
        accessKeyIdEnv: setEnv('CG_LV_AWS_KEY_ID', iamKey.AccessKeyId!), secretAccessKeyEnv: setEnv('CG_LV_AWS_SECRET', iamKey.SecretAccessKey!),
        allowedPolicyArns: [READ_ONLY], allowedGroups: [GROUP], policy: { protectedAccounts: ['moto-admin'], revokeMode: mode },
      }),
      kinds: [
        kind('user', () => ({ type: 'service_account', name: `lv-${hex()}` }),
          async (id) => {
            // Every kind of credential an IAM user holds, and a group and a policy.
            await moto.admin.send(new CreateUserCommand({ UserName: id.name, Path: IAM_PATH }));
            await moto.admin.send(new CreateAccessKeyCommand({ UserName: id.name }));
            await moto.admin.send(new CreateLoginProfileCommand({ UserName: id.name, Password: 'Aa1!aaaaaaaaaaaa' }));
            await moto.admin.send(new UploadSSHPublicKeyCommand({ UserName: id.name, SSHPublicKeyBody: sshPublicKey() }));
            await moto.admin.send(new UploadSigningCertificateCommand({ UserName: id.name, CertificateBody: selfSignedCertificate() }));
            await moto.admin.send(new EnableMFADeviceCommand({ UserName: id.name, SerialNumber: `arn:aws:iam::${MOTO_ACCOUNT_ID}:mfa/${id.name}`, AuthenticationCode1: '123456', AuthenticationCode2: '654321' }));
            await moto.admin.send(new AddUserToGroupCommand({ UserName: id.name, GroupName: GROUP }));
            await moto.admin.send(new AttachUserPolicyCommand({ UserName: id.name, PolicyArn: READ_ONLY }));
          },
          async (id) => {
            const user = await moto.admin.send(new GetUserCommand({ UserName: id.name })).catch(noSuch);
            if (!user) return { exists: false };
            const keys = (await moto.admin.send(new ListAccessKeysCommand({ UserName: id.name }))).AccessKeyMetadata ?? [];
            const console = await moto.admin.send(new GetLoginProfileCommand({ UserName: id.name })).catch(noSuch);
            return { exists: true, locked: !keys.some((k) => k.Status === 'Active') && console === null };
          },
        ),
        {
          ...kind('role', () => ({ type: 'service_account', name: `role/lv-${hex()}` }),
          async (id) => {
            const trust = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] };
            await moto.admin.send(new CreateRoleCommand({ RoleName: id.name.slice(5), Path: IAM_PATH, AssumeRolePolicyDocument: JSON.stringify(trust) }));
            await moto.admin.send(new AttachRolePolicyCommand({ RoleName: id.name.slice(5), PolicyArn: READ_ONLY }));
          },
          // A role has no credential of its own: it is locked when its trust policy lets no one assume it.
          async (id) => {
            const role = await moto.admin.send(new GetRoleCommand({ RoleName: id.name.slice(5) })).catch(noSuch);
            if (!role) return { exists: false };
            // Read here without the connector's parser: what the administrator sees is whether anything is allowed.
            const doc = role.Role?.AssumeRolePolicyDocument ?? '';
            const trust = JSON.parse(doc.startsWith('{') ? doc : decodeURIComponent(doc)) as { Statement: Array<{ Effect: string }> };
            return { exists: true, locked: !trust.Statement.some((st) => st.Effect === 'Allow') };
          },
        ),
          // Under disable the role is stripped but can still be assumed, which the read-back sees.
          unverifiable: UNVERIFIABLE_LEAVERS[0],
        },
      ],
    });

    // Vault: OpenBao with KV, the MariaDB database engine and a PKI, and the gateway's least-privilege token.
    const fx = await setupVaultFixture(bao);
    stops.push(() => fx.cleanup());
    const kvPath = (id: IdentityRef): string => `${fx.kvPrefix}/${id.name.slice(3)}`;
    const certsOf = async (cn: string): Promise<Array<{ revoked: boolean }>> => {
      const serials = (await bao.root<{ data?: { keys: string[] } }>('LIST', 'pki/certs', undefined, [404])).body.data?.keys ?? [];
      const out: Array<{ revoked: boolean }> = [];
      for (const serial of serials) {
        const cert = (await bao.root<{ data: { certificate: string; revocation_time: number } }>('GET', `pki/cert/${serial}`)).body.data;
        if (new X509Certificate(cert.certificate).subject === `CN=${cn}`) out.push({ revoked: cert.revocation_time > 0 });
      }
      return out;
    };
    const leases = async (role: string): Promise<number> =>
      ((await bao.root<{ data?: { keys: string[] } }>('LIST', `sys/leases/lookup/database/creds/${role}/`, undefined, [404])).body.data?.keys ?? []).length;
    add({
      type: 'vault',
      entry: (mode) => ({
        name: name('vault', mode), type: 'vault', address: bao.address, tokenEnv: setEnv('CG_LV_VAULT_TOKEN', fx.gatewayToken), kvPrefix: fx.kvPrefix,
        databaseRoles: [fx.dbRole, fx.dbRoleNoDrop], databaseUsers: fx.databaseUsers('CG_LV_VAULT_DB_PASSWORD'), pkiRole: fx.pkiRole, pkiTtl: '24h',
        policy: { protectedAccounts: [], revokeMode: mode },
      }),
      kinds: [
        kind('kv/ secret', () => ({ type: 'service_account', name: `kv/lv/${hex()}` }),
          async (id) => {
            // What KV secrets hold: a workload's credential, here its own Vault token; and a declared reader.
            const token = (await bao.root<{ auth: { client_token: string } }>('POST', 'auth/token/create', { policies: ['default'], ttl: '10m' })).body.auth.client_token;
            await bao.root('POST', `secret/data/${kvPath(id)}`, { data: { value: token } });
            await bao.root('PATCH', `secret/metadata/${kvPath(id)}`, { custom_metadata: { 'changegate.reader.app-billing': 'granted' } });
          },
          async (id) => {
            const meta = await bao.root<{ data?: { current_version: number; versions: Record<string, { deletion_time: string }> } }>('GET', `secret/metadata/${kvPath(id)}`, undefined, [404]);
            if (meta.status === 404 || !meta.body.data) return { exists: false };
            return { exists: true, locked: meta.body.data.versions[String(meta.body.data.current_version)]?.deletion_time !== '' };
          },
        ),
        kind('pki/ certificate', () => ({ type: 'service_account', name: `pki/lv-${hex()}.${fx.domain}` }),
          async (id) => {
            await bao.root('POST', `pki/issue/${fx.pkiRole}`, { common_name: id.name.slice(4), alt_names: `api.${fx.domain}`, ttl: '1h' });
          },
          async (id) => {
            const certs = await certsOf(id.name.slice(4));
            return certs.length === 0 ? { exists: false } : { exists: true, locked: certs.every((c) => c.revoked) };
          },
        ),
        {
          // db/<role> names a role's leases, not something made per test: the present one is app-ro with a lease issued
          // as root, the absent one app-nodrop, which nothing in this run leases.
          label: 'db/ leases',
          async present() {
            await bao.root('GET', `database/creds/${fx.dbRole}`);
            return { type: 'service_account', name: `db/${fx.dbRole}` };
          },
          absent: () => ({ type: 'service_account', name: `db/${fx.dbRoleNoDrop}` }),
          // A lease, or a database user a lease of the role created (read as MariaDB's administrator).
          view: async (id) => {
            const role = id.name.slice(3);
            const users = (await fx.dbUsers()).filter((u) => u.startsWith(`${fx.userPrefix}${role.replaceAll('-', '_')}_`));
            return (await leases(role)) > 0 || users.length > 0 ? { exists: true, locked: false } : { exists: false };
          },
        },
      ],
    });
  } catch (err) {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    throw err;
  }
  return {
    targets,
    scimAdmin: scimAdmin!,
    entries: () => [...targets.values()].flatMap((t) => [t.entry('delete'), t.entry('disable')]),
    async stop() {
      for (const stop of stops.reverse()) await stop();
    },
  };
}
