import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { ADMIN_USER, GATEWAY_USER, type ScimTarget, startScimProvider } from './support/servers/scim';
import { type OpenBao, setupVaultFixture, startOpenBao, type VaultFixture } from './support/servers/openbao';
import { type Stack, startStack, uniqueTicketNumber, waitFor } from './support/stack';
import { startStatementTap, type StatementTap } from './support/statement-tap';
import { TEST_ENV } from './support/test-env';

/**
 * Targets that answer a revoke with success and keep the access, through the workflow's "not verified" path end to
 * end: the step fails, the evidence row says so, closure-check refuses and the ticket's gate is never set to let it
 * close. Real Temporal, MariaDB, SCIM provider and OpenBao; ServiceNow simulated. Three kinds of silence:
 *   - the SCIM provider drops every member write the gateway sends (its own sync puts memberships back) and still
 *     answers 2xx;
 *   - MariaDB: an administrator re-grants what the gateway revoked, after the revoke and before the read-back;
 *   - Vault: the lease revoke is answered OK, but the role's revocation statements leave the MariaDB user in place.
 */
describe('targets that silently keep the access a revoke took', () => {
  let scim: ScimTarget;
  let tap: StatementTap;
  let bao: OpenBao;
  let fx: VaultFixture;
  let admin: mysql.Connection;
  let stack: Stack;
  /**
   * The MariaDB account an administrator keeps its grant on, and how often the gateway revoked it and the administrator
   * re-granted it before the gateway read it back.
   */
  const regrant: { account?: string; armed: boolean; revokes: number; regrants: number } = { armed: false, revokes: 0, regrants: 0 };
  const made: string[] = [];

  beforeAll(async () => {
    admin = await mysql.createConnection({ uri: TEST_ENV.adminUrl });
    // The gateway's MariaDB connector reaches the real server through a tap that reads its statements. Each time the
    // revoke of the watched account has reached the server, the next read-back of its grants waits until a second,
    // administrator's connection has granted SELECT again: the re-grant lands between apply and read-back, in every
    // round the step makes (it acts again while a read-back disagrees), as a configuration tool re-applying it would.
    tap = await startStatementTap({ host: '127.0.0.1', port: 3306 }, async (sql) => {
      const account = regrant.account;
      if (account === undefined) return;
      const quoted = `'${account}'@'%'`;
      if (sql === `REVOKE ALL PRIVILEGES, GRANT OPTION FROM ${quoted}`) {
        regrant.revokes++;
        regrant.armed = true;
      } else if (regrant.armed && sql === `SHOW GRANTS FOR ${quoted}`) {
        await admin.query(`GRANT SELECT ON \`${TEST_ENV.targetDatabases[0]!.replace(/_/g, '\\_')}\`.* TO ?@?`, [account, '%']);
        regrant.regrants++;
        regrant.armed = false;
      }
    });
    scim = await startScimProvider({ ignoreMemberWritesBy: [GATEWAY_USER] });
    await scim.admin.createGroup('cg-readers');
    process.env.CG_SILENT_SCIM_TOKEN = scim.tokens.gateway;
    bao = await startOpenBao();
    fx = await setupVaultFixture(bao);
    process.env.CG_SILENT_VAULT_TOKEN = fx.gatewayToken;
    stack = await startStack({
      extraConnectors: [
        {
          name: 'scim-silent', type: 'scim', baseUrl: scim.url, tokenEnv: 'CG_SILENT_SCIM_TOKEN', ownUserName: GATEWAY_USER,
          policy: { protectedAccounts: [ADMIN_USER], revokeMode: 'disable' },
        },
        {
          name: 'mysql-regranted', type: 'mysql', host: '127.0.0.1', port: tap.port, user: TEST_ENV.connectorUser, passwordEnv: 'CG_TEST_CONNECTOR_PASSWORD',
          policy: { protectedAccounts: ['root', 'mysql', 'mariadb.sys'], revokeMode: 'disable' },
        },
        {
          name: 'vault-silent', type: 'vault', address: bao.address, tokenEnv: 'CG_SILENT_VAULT_TOKEN', kvPrefix: fx.kvPrefix,
          databaseRoles: [fx.dbRoleNoDrop], databaseUsers: fx.databaseUsers('CG_SILENT_VAULT_DB_PASSWORD'), policy: { protectedAccounts: [] },
        },
      ],
    });
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
    await scim?.stop();
    await fx?.cleanup();
    await bao?.stop();
    await tap?.stop();
    for (const name of made) await admin?.query('DROP USER IF EXISTS ?@?', [name, '%']);
    await admin?.end();
  }, 60_000);

  /** The gate the ticket carries never says the change may close: unset, or the gateway's own "pending". */
  const expectGateNotSet = (sysId: string): void => {
    const change = stack.sim.getChange(sysId)!;
    expect(['', 'pending']).toContain(change.u_identity_cleanup);
    expect(change.u_identity_cleanup_digest).toBe('');
  };

  it('a leaver whose group removal the provider drops fails "not verified", with evidence saying so, closure refused and the gate never set', async () => {
    const userName = `silent.${randomBytes(4).toString('hex')}@scim.test`;
    const userId = await scim.admin.createUser(userName);
    const group = (await scim.admin.findGroup('cg-readers'))!;
    await scim.admin.addMember(group.id, userId);
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({
      number, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'leaver', system: 'scim-silent', identity: { type: 'person', name: userName } }]),
    });

    const check = await waitFor('the leaver to end', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.status === 'failed' ? r.data : null;
    }, 60_000);
    expect(check.steps[0].detail).toMatch(/not verified.*grants still present: group=cg-readers/);
    expect(check.allowed).toBe(false);
    expect(check.reasons).toEqual([expect.stringMatching(/^leaver of .* on scim-silent failed: .*grants still present: group=cg-readers/)]);

    // The evidence row records what the read-back found: not verified, the membership still there.
    const rows = await stack.evidence.list(`servicenow:${number}`);
    const row = rows.find((r) => r.actionKind === 'leaver')!;
    expect(row).toMatchObject({ verified: false, observedState: { exists: true, locked: true, grants: ['group=cg-readers'] } });
    expect(row.verification).toMatchObject({ mismatches: ['grants still present: group=cg-readers'] });

    // The provider really kept it, read as its administrator: the gateway's 2xx was not the truth.
    expect((await scim.admin.findGroup('cg-readers'))?.members?.map((m) => m.value)).toContain(userId);
    expect((await scim.admin.findUser(userName))?.active).toBe(false);
    // The gate the ticket carries never lets it close.
    await waitFor('the failure noted on the ticket', () => stack.sim.journal(change.sys_id as string, 'work_notes').some((n) => n.value.includes('FAILED')));
    expectGateNotSet(change.sys_id as string);
  });

  it('a MariaDB grant an administrator re-adds after every revoke, before the read-back: the leaver fails "not verified", the evidence shows the grant, closure refused, the gate never set', async () => {
    const account = `sil_${randomBytes(5).toString('hex')}`;
    made.push(account);
    const billing = `\`${TEST_ENV.targetDatabases[0]!.replace(/_/g, '\\_')}\`.*`;
    await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [account, '%', randomBytes(12).toString('hex')]);
    await admin.query(`GRANT SELECT ON ${billing} TO ?@?`, [account, '%']);
    regrant.account = account;
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({
      number, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'leaver', system: 'mysql-regranted', identity: { type: 'service_account', name: account, host: '%' } }]),
    });

    const check = await waitFor('the leaver to end', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.status === 'failed' || r.data.steps?.[0]?.status === 'verified' ? r.data : null;
    }, 60_000);
    const stillThere = `grants still present: SELECT ON ${billing}`;
    expect(check.steps[0]).toMatchObject({ status: 'failed', detail: expect.stringContaining(`not verified: ${stillThere}`) });
    // Every revoke the gateway made (it tried more than once) was undone before its read-back, and the last statement
    // about the account was that read-back's.
    expect(tap.errors).toEqual([]);
    expect(regrant.revokes).toBeGreaterThan(1);
    expect(regrant.regrants).toBe(regrant.revokes);
    const about = tap.statements.filter((st) => st.includes(`'${account}'`));
    expect(about.lastIndexOf(`SHOW GRANTS FOR '${account}'@'%'`)).toBeGreaterThan(about.lastIndexOf(`REVOKE ALL PRIVILEGES, GRANT OPTION FROM '${account}'@'%'`));
    regrant.account = undefined;

    expect(check.allowed).toBe(false);
    expect(check.reasons).toEqual([expect.stringMatching(new RegExp(`^leaver of .* on mysql-regranted failed: .*${stillThere.replace(/[\\`.*]/g, '\\$&')}`))]);

    const [row] = await stack.evidence.list(`servicenow:${number}`);
    expect(row).toMatchObject({
      outcome: 'failed', verified: false,
      desiredState: { exists: true, locked: true, noGrants: true },
      observedState: { exists: true, locked: true, grants: [`SELECT ON ${billing}`] },
    });
    expect(row?.verification.mismatches).toEqual([stillThere]);
    // What MariaDB holds, read as its administrator: locked by the gateway, the grant back.
    expect((await stack.grantsOf(account)).join('\n')).toContain(`GRANT SELECT ON ${billing} TO`);
    await waitFor('the failure noted on the ticket', () => stack.sim.journal(change.sys_id as string, 'work_notes').some((n) => n.value.includes('FAILED')));
    expectGateNotSet(change.sys_id as string);
  });

  it('a Vault lease whose database user survives: Vault answers the revoke OK, the read-back finds the MariaDB user, the leaver fails "not verified", closure refused, the gate never set', async () => {
    const before = await fx.dbUsers();
    // A workload's lease, issued by Vault as it would be: the engine creates its MariaDB user.
    await bao.root('GET', `database/creds/${fx.dbRoleNoDrop}`);
    const [user] = (await fx.dbUsers()).filter((u) => !before.includes(u));
    expect(user).toBeDefined();
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({
      number, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'leaver', system: 'vault-silent', identity: { type: 'service_account', name: `db/${fx.dbRoleNoDrop}` } }]),
    });

    const check = await waitFor('the leaver to end', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.status === 'failed' || r.data.steps?.[0]?.status === 'verified' ? r.data : null;
    }, 60_000);
    expect(check.steps[0]).toMatchObject({ status: 'failed', detail: expect.stringContaining('not verified: account still exists') });
    expect(check.allowed).toBe(false);
    expect(check.reasons).toEqual([expect.stringMatching(/^leaver of .* on vault-silent failed: .*account still exists/)]);

    const [row] = await stack.evidence.list(`servicenow:${number}`);
    expect(row).toMatchObject({
      outcome: 'failed', verified: false, desiredState: { exists: false },
      observedState: { exists: true, grants: ['login'], attributes: { leases: 0, databaseUsers: [user] } },
    });
    expect(row?.verification.mismatches).toEqual(['account still exists']);
    // The last round's words: the lease was revoked in the first, and nothing Vault can revoke is left.
    expect(row?.verification.applied).toBe(`db/${fx.dbRoleNoDrop} has no live lease, but 1 database user(s) its leases created remain (${user}): Vault cannot revoke them`);
    // Vault holds no lease (its revoke was answered OK); MariaDB's administrator still sees the user.
    const leases = await bao.root<{ data?: { keys: string[] } }>('LIST', `sys/leases/lookup/database/creds/${fx.dbRoleNoDrop}/`, undefined, [404]);
    expect(leases.body.data?.keys ?? []).toEqual([]);
    expect(await fx.dbUsers()).toContain(user);
    await waitFor('the failure noted on the ticket', () => stack.sim.journal(change.sys_id as string, 'work_notes').some((n) => n.value.includes('FAILED')));
    expectGateNotSet(change.sys_id as string);
  });
});
