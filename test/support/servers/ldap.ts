import type { ConnectorsFile } from '../../../src/connectors/registry';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'ldapts';
import { freePort, spawnServer } from './process';

const TEMPLATES = resolve(__dirname, '../../../src/connectors/ldap');
const SLAPD = '/usr/sbin/slapd';
const SLAPADD = '/usr/sbin/slapadd';

export const LDAP_BASE_DN = 'dc=changegate,dc=test';
export const LDAP_CONNECTOR_DN = `uid=changegate-connector,ou=services,${LDAP_BASE_DN}`;
const ADMIN_DN = `cn=admin,${LDAP_BASE_DN}`;

export interface LdapTestServer {
  url: string;
  baseDn: string;
  /** The connector's own least-privilege entry and its password (never the rootdn). */
  connectorDn: string;
  connectorPassword: string;
  /** Runs `fn` with a client bound as the rootdn: the administrator acting behind the gateway's back. */
  asAdmin<T>(fn: (admin: Client) => Promise<T>): Promise<T>;
  stop(): Promise<void>;
}

/** `{SSHA}` as slappasswd makes it: base64(SHA-1(password ‖ salt) ‖ salt). */
function ssha(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash('sha1').update(password).update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

/**
 * Starts a private slapd (OpenLDAP, Debian's packages from scripts/setup.d/50-ldap.sh) on a free port, with the
 * configuration and seed data the demo uses (src/connectors/ldap/slapd.conf.in, seed.ldif.in), in a temporary
 * directory removed again by stop(). The database is loaded offline with slapadd before slapd starts.
 */
export async function startLdapServer(): Promise<LdapTestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'cg-slapd-'));
  try {
    const adminPassword = randomBytes(18).toString('base64url');
    const connectorPassword = randomBytes(18).toString('base64url');
    const conf = join(dir, 'slapd.conf');
    const seed = join(dir, 'seed.ldif');
    const render = async (template: string, vars: Record<string, string>): Promise<string> =>
      Object.entries(vars).reduce((text, [k, v]) => text.replaceAll(`@${k}@`, v), await readFile(join(TEMPLATES, template), 'utf8'));
    await writeFile(conf, await render('slapd.conf.in', { DIR: dir, ROOTPW_HASH: ssha(adminPassword) }), { mode: 0o600 });
    await writeFile(seed, await render('seed.ldif.in', { CONNECTOR_PASSWORD_HASH: ssha(connectorPassword) }), { mode: 0o600 });
    await mkdir(join(dir, 'db'), { mode: 0o700 });
    await promisify(execFile)(SLAPADD, ['-q', '-f', conf, '-l', seed]);

    const port = await freePort();
    const url = `ldap://127.0.0.1:${port}`;
    const adminClient = async (): Promise<Client> => {
      const c = new Client({ url, connectTimeout: 2_000, timeout: 10_000 });
      try {
        await c.bind(ADMIN_DN, adminPassword);
        return c;
      } catch (err) {
        await c.unbind().catch(() => undefined);
        throw err;
      }
    };
    const server = await spawnServer('slapd', SLAPD, ['-h', `ldap://127.0.0.1:${port}/`, '-f', conf, '-d', '0'], async () => {
      await (await adminClient()).unbind();
      return true;
    });
    return {
      url,
      baseDn: LDAP_BASE_DN,
      connectorDn: LDAP_CONNECTOR_DN,
      connectorPassword,
      asAdmin: async (fn) => {
        const admin = await adminClient();
        try {
          return await fn(admin);
        } finally {
          await admin.unbind().catch(() => undefined);
        }
      },
      stop: async () => {
        await server.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}


/**
 * The connector entry for a private slapd, for startStack({ extraConnectors }): its password reaches the registry the
 * way production's does, through a named environment variable.
 */
export function ldapConnectorEntry(ldap: LdapTestServer, name: string, policy: ConnectorsFile['connectors'][number]['policy']): ConnectorsFile['connectors'][number] {
  process.env.CG_TEST_LDAP_PASSWORD = ldap.connectorPassword;
  return { name, type: 'ldap', url: ldap.url, baseDn: LDAP_BASE_DN, bindDn: ldap.connectorDn, passwordEnv: 'CG_TEST_LDAP_PASSWORD', policy };
}
