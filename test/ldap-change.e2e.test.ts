import { randomBytes } from 'node:crypto';
import { LDAP_BASE_DN, type LdapTestServer, ldapConnectorEntry, startLdapServer } from './support/servers/ldap';
import { type Stack, startStack, uniqueTicketNumber, waitFor } from './support/stack';

/**
 * The change workflow on a second kind of target: a real slapd whose connector policy is `disable`. The joiner and
 * the leaver are the same workflow code the MariaDB tests run; what changes is what the target is left as, which
 * the connector reports and the read-back must find.
 */
describe('joiner, mover and disable-policy leaver on LDAP, driven by ServiceNow changes', () => {
  let ldap: LdapTestServer;
  let stack: Stack;
  beforeAll(async () => {
    ldap = await startLdapServer();
    stack = await startStack({
      extraConnectors: [
        ldapConnectorEntry(ldap, 'ldap-test', { protectedAccounts: [], revokeMode: 'disable' }),
      ],
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await ldap?.stop();
  });

  const entry = async (uid: string) =>
    ldap.asAdmin(async (admin) => {
      const people = await admin.search(`ou=people,${LDAP_BASE_DN}`, { filter: `(uid=${uid})`, attributes: ['pwdAccountLockedTime'] });
      const readers = await admin.search(`cn=cg-readers,ou=groups,${LDAP_BASE_DN}`, { attributes: ['member'] });
      const members = ([] as unknown[]).concat(readers.searchEntries[0]?.member ?? []).map(String);
      const locked = ([] as unknown[]).concat(people.searchEntries[0]?.pwdAccountLockedTime ?? []).map(String)[0] ?? null;
      return { found: people.searchEntries.length, locked, member: members.some((m) => m.startsWith(`uid=${uid},`)) };
    });

  /** A new person made a member of cg-readers by a joiner on an authorized change, verified. */
  const joinReaders = async () => {
    const uid = `cgt-${randomBytes(4).toString('hex')}`;
    const identity = { type: 'person', name: uid };
    const joinTicket = uniqueTicketNumber();
    stack.sim.createChange({
      number: joinTicket, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'ldap-test', identity, grants: ['group=cg-readers'], ttl: 'P1D' }]),
    });
    await waitFor('granted evidence', async () => (await stack.evidence.list(`servicenow:${joinTicket}`)).some((r) => r.outcome === 'granted' && r.verified));
    return { uid, identity };
  };

  it('grants group membership late, then the leaver locks the person and strips the group, verified by read-back', async () => {
    const { uid, identity } = await joinReaders();
    expect(await entry(uid)).toEqual({ found: 1, locked: null, member: true });

    const leaveTicket = uniqueTicketNumber();
    stack.sim.createChange({ number: leaveTicket, state: '-2', u_identity_actions: JSON.stringify([{ kind: 'leaver', system: 'ldap-test', identity }]) });
    const rows = await waitFor('revoked evidence', async () => {
      const r = await stack.evidence.list(`servicenow:${leaveTicket}`);
      return r.some((x) => x.outcome === 'revoked') ? r : null;
    });
    const revoked = rows.find((x) => x.outcome === 'revoked')!;
    // The connector's policy, not the workflow, decides what "revoked" means here: kept, locked, stripped.
    expect(revoked).toMatchObject({ verified: true, desiredState: { exists: true, locked: true, noGrants: true }, observedState: { exists: true, locked: true, grants: [] } });
    expect(await entry(uid)).toEqual({ found: 1, locked: '000001010000Z', member: false });
    await waitFor('closure allowed', async () => (await stack.closureCheck(leaveTicket)).data.allowed === true);
  });

  it('a mover takes a person out of the group they no longer need at once, and into the new one once the change is authorized', async () => {
    const { uid, identity } = await joinReaders();

    const moveTicket = uniqueTicketNumber();
    const change = stack.sim.createChange({
      number: moveTicket, state: '-3', approval: 'requested',
      u_identity_actions: JSON.stringify([{ kind: 'mover', system: 'ldap-test', identity, grants: ['group=cg-writers'], ttl: 'P1D' }]),
    });
    const removal = await waitFor('removal evidence', async () => (await stack.evidence.list(`servicenow:${moveTicket}`)).find((r) => r.outcome === 'ungranted'));
    expect(removal).toMatchObject({ verified: true, desiredState: { exists: true, mustNotHave: ['group=cg-readers'] } });
    expect((await entry(uid)).member).toBe(false);
    stack.sim.updateChange(change.sys_id as string, { state: '-1', approval: 'approved' });
    const granted = await waitFor('grant evidence', async () => (await stack.evidence.list(`servicenow:${moveTicket}`)).find((r) => r.outcome === 'granted'));
    expect(granted).toMatchObject({ verified: true, observedState: { exists: true, grants: ['group=cg-writers'] } });
  });
});
