import { randomBytes } from 'node:crypto';
import type { IdentityRef } from '../src/actions/identity-action';
import { type DesiredAccount, GONE, REVOKE_MODES } from '../src/connectors/connector';
import { revokeTarget } from '../src/connectors/revoke-policy';
import { GrammarRegistry } from '../src/connectors/registry';
import { assertNoSecrets } from '../src/evidence/redaction';
import { CONNECTOR_TYPES, type IdentityKind, type LeaverTargets, startLeaverTargets, UNVERIFIABLE_LEAVERS } from './support/leaver-targets';
import { connectorsFile, type Stack, startStack, uniqueTicketNumber, waitFor } from './support/stack';

/**
 * The revoke policy end to end: a ServiceNow change carrying leavers, delivered through the signed webhook, run by
 * the real workflow on the real Temporal server against the real target of every connector, under both policies,
 * for identities that exist (made by an administrator, holding real credentials) and identities that do not. Each
 * leaver must be verified by read-back, recorded in the evidence chain (which refuses secrets), agree with what an
 * administrator sees on the target, and leave the change free to close.
 */
describe('leavers on all eight connectors under both revoke policies, identity present and absent, through the webhook and workflow', () => {
  let targets: LeaverTargets;
  let stack: Stack;
  let grammars: GrammarRegistry;

  beforeAll(async () => {
    targets = await startLeaverTargets();
    const extraConnectors = targets.entries();
    grammars = new GrammarRegistry({ connectors: [...connectorsFile().connectors, ...extraConnectors] });
    stack = await startStack({ extraConnectors });
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
    await targets?.stop();
  }, 60_000);

  interface Case {
    kind: IdentityKind;
    identity: IdentityRef;
    present: boolean;
  }

  for (const type of CONNECTOR_TYPES) {
    for (const mode of REVOKE_MODES) {
      it(`${type}, ${mode} policy: present identities are left as the policy declares, absent ones are already absent; all verified, recorded, and closure is allowed`, async () => {
        const target = targets.targets.get(type)!;
        const system = `${type}-${mode}`;
        const cases: Case[] = [];
        for (const kind of target.kinds) {
          // A present identity the gateway cannot leave as this policy asks is the next test's.
          if (kind.unverifiable?.mode !== mode) cases.push({ kind, identity: await kind.present(), present: true });
          cases.push({ kind, identity: kind.absent(), present: false });
        }
        const number = uniqueTicketNumber();
        stack.sim.createChange({ number, state: '-5', u_identity_actions: JSON.stringify(cases.map((c) => ({ kind: 'leaver', system, identity: c.identity }))) });

        const state = await waitFor(`every leaver of ${number} to end`, async () => {
          const s = await stack.workflows.status('servicenow', number);
          return s && s.steps.length === cases.length && s.steps.every((st) => st.status === 'verified' || st.status === 'failed') ? s : null;
        }, 90_000);
        expect(state.steps.filter((s) => s.status !== 'verified').map((s) => `${s.action.identity.name}: ${s.detail}`)).toEqual([]);

        const key = `servicenow:${number}`;
        const rows = await stack.evidence.list(key);
        expect(rows).toHaveLength(cases.length);
        for (const c of cases) {
          const label = `${c.kind.label} ${c.present ? 'present' : 'absent'} (${c.identity.name})`;
          const row = rows.find((r) => r.identity.name === c.identity.name)!;
          const leaves: DesiredAccount = c.present ? revokeTarget(grammars.get(system)!.grammar, c.identity, mode).leaves : GONE;
          expect([label, row.outcome, row.verified, row.desiredState]).toEqual([label, 'revoked', true, { ...leaves }]);
          if (!c.present) expect([label, row.verification.applied]).toEqual([label, expect.stringMatching(/ was already absent$/)]);
          expect(() => assertNoSecrets(row)).not.toThrow();
          // What an administrator sees on the target, past the connector's own read-back.
          const seen = await c.kind.view(c.identity);
          expect([label, seen.exists]).toEqual([label, leaves.exists]);
          if (leaves.exists && leaves.locked !== undefined) expect([label, seen.locked]).toEqual([label, leaves.locked]);
        }
        expect(await stack.evidence.verifyChain(key)).toEqual({ valid: true, rows: cases.length });
        const check = await waitFor('closure allowed', async () => {
          const r = await stack.closureCheck(number);
          return r.status === 200 && r.data.allowed === true ? r : null;
        });
        expect(check.data.reasons).toEqual([]);
      }, 120_000);
    }
  }

  for (const { type, kind: label, mode, mismatch } of UNVERIFIABLE_LEAVERS) {
    it(`${type}, ${mode} policy: a present ${label}, which the gateway cannot leave as the policy asks, is not verified, the evidence says why, and closure is refused`, async () => {
      const kind = targets.targets.get(type)!.kinds.find((k) => k.label === label)!;
      expect(kind.unverifiable).toEqual({ type, kind: label, mode, mismatch });
      const system = `${type}-${mode}`;
      const identity = await kind.present();
      const number = uniqueTicketNumber();
      stack.sim.createChange({ number, state: '-5', u_identity_actions: JSON.stringify([{ kind: 'leaver', system, identity }]) });
      const check = await waitFor(`the leaver of ${number} to end`, async () => {
        const r = await stack.closureCheck(number);
        return r.data.steps?.[0]?.status === 'failed' || r.data.steps?.[0]?.status === 'verified' ? r.data : null;
      }, 90_000);
      expect(check.steps[0]).toMatchObject({ status: 'failed', detail: expect.stringContaining(`not verified: ${mismatch}`) });
      expect(check.allowed).toBe(false);
      const [row] = await stack.evidence.list(`servicenow:${number}`);
      expect(row).toMatchObject({ outcome: 'failed', verified: false, desiredState: { ...revokeTarget(grammars.get(system)!.grammar, identity, mode).leaves } });
      expect(row?.verification.mismatches).toEqual([mismatch]);
      // The administrator agrees: the identity is still there and not locked.
      expect(await kind.view(identity)).toEqual({ exists: true, locked: false });
    }, 120_000);
  }

  it('a read-back the evidence store refuses (a credential in a group name) fails the step at once as EvidenceRefused, never retried, the value nowhere', async () => {
    const scimKind = targets.targets.get('scim')!.kinds[0]!;
    const identity = await scimKind.present();
    // An administrator pasted a token into a group's name, and the user is in that group: inspect reports it.
    const leaked = `Bearer ${randomBytes(24).toString('base64url')}`;
    const scim = targets.scimAdmin;
    const groupId = await scim.createGroup(`ops ${leaked}`);
    await scim.addMember(groupId, String((await scim.findUser(identity.name))!.id));

    const number = uniqueTicketNumber();
    stack.sim.createChange({
      number, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'scim-delete', identity, grants: ['group=cg-readers'], ttl: 'P1D' }]),
    });
    const state = await waitFor('the joiner to end', async () => {
      const s = await stack.workflows.status('servicenow', number);
      return s?.steps[0]?.status === 'failed' || s?.steps[0]?.status === 'verified' ? s : null;
    }, 60_000);
    expect(state.steps[0]).toMatchObject({ status: 'failed', detail: expect.stringMatching(/^could not verify and record: refusing to record a secret-bearing field at observedState\.grants\[\d\]: it holds a bearer token$/) });

    const history = await stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).fetchHistory();
    const events = history.events ?? [];
    const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'applyVerifyRecord').map((e) => Number(e.eventId));
    expect(scheduled).toHaveLength(1);
    const started = events.find((e) => Number(e.activityTaskStartedEventAttributes?.scheduledEventId) === scheduled[0]);
    expect(started?.activityTaskStartedEventAttributes?.attempt).toBe(1);
    const failed = events.find((e) => Number(e.activityTaskFailedEventAttributes?.scheduledEventId) === scheduled[0])?.activityTaskFailedEventAttributes?.failure;
    expect(failed?.applicationFailureInfo).toMatchObject({ type: 'EvidenceRefused', nonRetryable: true });

    expect(await stack.evidence.list(`servicenow:${number}`)).toEqual([]);
    const check = await stack.closureCheck(number);
    expect(check.data.allowed).toBe(false);
    const bytesAsText = (_k: string, v: unknown): unknown => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v);
    expect(JSON.stringify([state, events, check.data], bytesAsText)).not.toContain(leaked.slice(7));
  }, 120_000);
});
