import { inspect } from 'node:util';
import { capabilityProblems, verifyAccount } from '../src/connectors/connector';
import { ConnectorRefusal, FailureType } from '../src/connectors/connector-errors';
import { capabilitiesOf, ConnectorRegistry, GrammarRegistry, knownTypes, loadConnectorsFile, parseConnectorsFile } from '../src/connectors/registry';
import { fingerprintOf, Secret } from '../src/connectors/secret';
import { classify } from '../src/inventory/inventory';
import { envSecrets } from '../src/connectors/connector-config';
import { containsSecret } from '../activities/connector-activities';

describe('Secret: a credential that cannot be printed by accident', () => {
  it('shows only its fingerprint through String, JSON, util.inspect, template literals and error messages', () => {
    const s = Secret.generate();
    const value = s.reveal();
    expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    for (const shown of [String(s), JSON.stringify({ s }), inspect({ nested: { s } }), `${s}`, new Error(`failed with ${s}`).message]) {
      expect(shown).not.toContain(value);
      expect(shown).toContain(s.fingerprint);
    }
  });

  it('fingerprints are stable, 128-bit, and differ between values', () => {
    expect(fingerprintOf('a')).toBe(fingerprintOf('a'));
    expect(fingerprintOf('a')).toMatch(/^sha256:[0-9a-f]{32}$/);
    expect(fingerprintOf('a')).not.toBe(fingerprintOf('b'));
    expect(() => new Secret('')).toThrow('must not be empty');
  });
});

describe('verifyAccount: what the target reports against what was asked', () => {
  it('a disable-policy leaver needs the account locked and stripped of every grant', () => {
    const desired = { exists: true, locked: true, noGrants: true };
    expect(verifyAccount(desired, { exists: true, locked: true, grants: [] })).toEqual({ verified: true, mismatches: [] });
    expect(verifyAccount(desired, { exists: true, locked: false, grants: [] }).mismatches).toEqual(['account is not locked/disabled']);
    // Disabled but still a member: the classic LDAP half-done leaver.
    expect(verifyAccount(desired, { exists: true, locked: true, grants: ['group=ops'] }).mismatches).toEqual(['grants still present: group=ops']);
    expect(verifyAccount(desired, { exists: false, grants: [] }).mismatches).toEqual(['account does not exist']);
  });
});

describe('declared connector capabilities', () => {
  /** One instance of every type, on loopback: building a live connector opens no connection, so none is needed. */
  const everyType = parseConnectorsFile({
    connectors: [
      { name: 'my', type: 'mysql', host: '127.0.0.1', user: 'u', passwordEnv: 'P' },
      { name: 'pg', type: 'postgres', host: '127.0.0.1', user: 'u', passwordEnv: 'P', ownedObjects: 'drop' },
      { name: 'rd', type: 'redis', host: '127.0.0.1', user: 'u', passwordEnv: 'P' },
      { name: 'mq', type: 'rabbitmq', url: 'http://127.0.0.1:15672', user: 'u', passwordEnv: 'P' },
      { name: 'ld', type: 'ldap', url: 'ldap://127.0.0.1:389', baseDn: 'dc=x,dc=y', bindDn: 'uid=gw,ou=services,dc=x,dc=y', passwordEnv: 'P' },
      { name: 'sc', type: 'scim', baseUrl: 'http://127.0.0.1:8095/scim/v2', tokenEnv: 'P' },
      { name: 'aw', type: 'aws-iam', endpoint: 'http://127.0.0.1:5000', userName: 'gw', accessKeyIdEnv: 'P', secretAccessKeyEnv: 'P' },
      { name: 'vt', type: 'vault', address: 'http://127.0.0.1:8200', tokenEnv: 'P', kvPrefix: 'changegate' },
    ],
  });

  it('each type declares them: rotation one- or two-phase, only Vault is a secrets store, only LDAP a directory of people', () => {
    expect(Object.fromEntries(knownTypes().map((t) => [t, capabilitiesOf(t)]))).toEqual({
      mysql: { rotation: 'one-phase' },
      postgres: { rotation: 'one-phase' },
      redis: { rotation: 'one-phase' },
      rabbitmq: { rotation: 'one-phase' },
      ldap: { rotation: 'one-phase', directory: true },
      scim: {},
      'aws-iam': { rotation: 'two-phase' },
      vault: { rotation: 'two-phase', secretSink: true },
    });
    const grammars = new GrammarRegistry(everyType);
    expect(grammars.get('vt')?.capabilities).toEqual({ rotation: 'two-phase', secretSink: true });
    expect(grammars.get('sc')?.capabilities).toEqual({});
  });

  it('the registry loads every type only when its live connector implements exactly what it declares', async () => {
    const registry = new ConnectorRegistry(everyType, { P: 'not-used' });
    try {
      for (const name of registry.names()) expect([name, capabilityProblems(registry.capabilities(name), registry.get(name))]).toEqual([name, []]);
    } finally {
      await registry.close();
    }
  });

  it('names what a connector lacks for a declared capability, and what it implements undeclared', () => {
    const rotatesOnly = { rotate: async () => undefined, authenticates: async () => false };
    expect(capabilityProblems({ rotation: 'two-phase' }, rotatesOnly)).toEqual(["declares two-phase rotation ('rotation': 'two-phase') but lacks retireOthers"]);
    expect(capabilityProblems({ rotation: 'one-phase' }, { rotate: async () => undefined })).toEqual(['declares rotation but lacks authenticates']);
    expect(capabilityProblems({}, rotatesOnly)).toEqual(['implements rotate, authenticates without declaring rotation']);
    expect(capabilityProblems({ rotation: 'one-phase' }, { ...rotatesOnly, deliver: async () => undefined })).toEqual(['implements deliver without declaring secretSink']);
  });

  it('hands out rotation and the secret sink only where declared, refusing the rest as TargetRefused', async () => {
    const registry = new ConnectorRegistry(everyType, { P: 'not-used' });
    try {
      expect(registry.rotator('aw').phases).toBe(2);
      expect(registry.rotator('rd').phases).toBe(1);
      for (const refused of [() => registry.rotator('sc'), () => registry.sink('my'), () => registry.sink('aw')]) {
        let err: unknown;
        try {
          refused();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(ConnectorRefusal);
        expect((err as ConnectorRefusal).type).toBe(FailureType.TargetRefused);
      }
      expect(typeof registry.sink('vt').deliver).toBe('function');
    } finally {
      await registry.close();
    }
  });
});

describe('connector configuration file', () => {
  it('names the known types when a type is unknown, and the path of every bad field', () => {
    expect(() => parseConnectorsFile({ connectors: [{ name: 'x', type: 'oracle' }] })).toThrow(/connectors\.0\.type: type must be one of mysql/);
    expect(() =>
      parseConnectorsFile({ connectors: [{ name: 'Bad Name', type: 'mysql', host: 'h', user: 'u', passwordEnv: 'lower', policy: { revokeMode: 'shred' } }] }),
    ).toThrow(
      /connectors\.0\.name: must be lower-case.*connectors\.0\.policy\.revokeMode: Invalid enum value.*connectors\.0\.passwordEnv: must name an environment variable/,
    );
  });

  it('refuses a password written into the file instead of an env var name, and duplicate names', () => {
    expect(() => parseConnectorsFile({ connectors: [{ name: 'x', type: 'mysql', host: 'h', user: 'u', passwordEnv: 'P', password: 'hunter2' }] })).toThrow(
      /Unrecognized key\(s\) in object: 'password'/,
    );
    const one = { name: 'x', type: 'mysql', host: 'h', user: 'u', passwordEnv: 'P' };
    expect(() => parseConnectorsFile({ connectors: [one, one] })).toThrow("connector name 'x' is defined twice");
    expect(parseConnectorsFile({ connectors: [one] }).connectors[0]?.policy).toEqual({ protectedAccounts: [], revokeMode: 'delete' });
  });
});

describe('inventory classification', () => {
  const latest = new Map([
    ['app1', { outcome: 'granted', ticketKey: 'servicenow:CHG1' }],
    ['gone', { outcome: 'revoked', ticketKey: 'servicenow:CHG2' }],
    ['kept', { outcome: 'revoked', ticketKey: 'servicenow:CHG3' }],
    ['stuck', { outcome: 'failed', ticketKey: 'servicenow:CHG4' }],
  ]);
  it('managed when granted by a change, revoked when kept disabled, orphan otherwise — including a revoke that did not take', () => {
    const report = classify(
      'db',
      [
        { name: 'app1' },
        { name: 'root', protected: true },
        { name: 'kept', locked: true },
        { name: 'gone' },
        { name: 'stray' },
        { name: 'stuck' },
      ],
      (_s, n) => latest.get(n),
    );
    expect(report.entries.map((e) => [e.name, e.status])).toEqual([
      ['app1', 'managed'],
      ['root', 'protected'],
      ['kept', 'revoked'],
      ['gone', 'orphan'],
      ['stray', 'orphan'],
      ['stuck', 'orphan'],
    ]);
    // A revoke that failed leaves an orphan that still names the change that tried.
    expect(report.entries.find((e) => e.name === 'stuck')?.ticketKey).toBe('servicenow:CHG4');
    expect(report.orphans).toBe(3);
  });
});

describe('shipped connector files', () => {
  it.each(['config/connectors.demo.json', 'config/connectors.compose.json'])('%s parses, and every connector has a grammar', (path) => {
    const file = loadConnectorsFile(path);
    const grammars = new GrammarRegistry(file);
    expect(grammars.names()).toEqual(file.connectors.map((c) => c.name));
  });
});

describe('rotation leak check', () => {
  it('finds the whole value, or any secret part of a structured credential, but not its public key id', () => {
    const pair = new Secret(JSON.stringify({ accessKeyId: 'AKIAEXAMPLEKEYID0001', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }));
    expect(containsSecret('{"keyId":"AKIAEXAMPLEKEYID0001"}', pair)).toBe(false);
    expect(containsSecret('detail: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', pair)).toBe(true);
    const plain = Secret.generate();
    expect(containsSecret(`x${plain.reveal()}y`, plain)).toBe(true);
    expect(containsSecret(plain.fingerprint, plain)).toBe(false);
  });
});

describe('credentials never cross the network unencrypted by default', () => {
  const mysqlAt = (host: string, extra: Record<string, unknown> = {}) => ({ connectors: [{ name: 'db', type: 'mysql', host, user: 'u', passwordEnv: 'P', ...extra }] });
  it('refuses a plain channel to a remote host, and allows loopback, TLS, or an explicit allowPlain', () => {
    expect(() => new GrammarRegistry(parseConnectorsFile(mysqlAt('db.internal')))).toThrow(
      "connector 'db': credentials would cross the network to db.internal unencrypted; set \"tls\": true, or set \"allowPlain\": true",
    );
    for (const ok of [mysqlAt('127.0.0.1'), mysqlAt('localhost'), mysqlAt('db.internal', { tls: true }), mysqlAt('db.internal', { allowPlain: true })]) {
      expect(new GrammarRegistry(parseConnectorsFile(ok)).names()).toEqual(['db']);
    }
    const ldap = { connectors: [{ name: 'dir', type: 'ldap', url: 'ldap://ldap.corp:389', baseDn: 'dc=corp', bindDn: 'uid=gw,ou=services,dc=corp', passwordEnv: 'P' }] };
    expect(() => new GrammarRegistry(parseConnectorsFile(ldap))).toThrow(/use ldaps:\/\//);
  });
});

describe('connector credentials from the environment', () => {
  it('an unset variable is an error naming the connector and the variable; an empty one is a value (root on a local server)', () => {
    const secrets = envSecrets({ SET: 's3cret', EMPTY: '' }, 'db');
    expect(secrets('SET')).toBe('s3cret');
    expect(secrets('EMPTY')).toBe('');
    expect(() => secrets('MISSING')).toThrow("connector 'db': environment variable MISSING is not set");
  });
});
