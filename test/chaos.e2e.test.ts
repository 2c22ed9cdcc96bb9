import { resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { createServiceNowSimulator } from '../src/itsm/servicenow/servicenow-simulator';
import { register } from '../src/kinds/registry';
import { planChaos } from './chaos/plan';
import { runChaos } from './chaos/run';
import { stepsScheduledTwice } from './chaos/steps-twice';
import { duplicatedNotes, outcomeLines, untold } from './chaos/ticket-notes';
import { twiceEdge } from './kinds/twice-edge';
import { type Stack, createAccount, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

/**
 * The randomized fault suite, small enough for every run of the test suite (`npm run chaos -- --tickets N` runs larger
 * ones): real Temporal dev server, MariaDB, a SCIM provider and a worker process killed with SIGKILL, now and then
 * and at chosen points of a step or a ticket write; an administrator changing a target between a step's apply and
 * its read-back; ServiceNow and Jira simulated with 429/503 windows and outages.
 */
describe('the closure gate under randomized faults', () => {
  it('plans the same tickets and faults for the same seed, and others for another seed', () => {
    const a = planChaos({ seed: 42, tickets: 50 });
    expect(planChaos({ seed: 42, tickets: 50 })).toEqual(a);
    expect(planChaos({ seed: 43, tickets: 50 })).not.toEqual(a);
    // Every kind of fault the suite knows is drawn by some seed of this size.
    const kinds = new Set<string>();
    for (let seed = 1; seed <= 20; seed += 1) {
      const p = planChaos({ seed, tickets: 50 });
      for (const f of p.faults) kinds.add(f.kind);
      for (const t of p.tickets) {
        kinds.add(t.delivery);
        if (t.killInTicketWrite) kinds.add('kill-in-ticket-write');
        for (const x of t.actions) {
          if (x.permanent) kinds.add(x.permanent);
          if (x.kill) kinds.add(x.kill);
          if (x.disturb === 'once') kinds.add('disturbed-once');
        }
      }
    }
    expect([...kinds].sort()).toEqual([
      'direct', 'disturbed', 'disturbed-once', 'duplicate', 'itsm-429', 'itsm-503', 'itsm-outage', 'kill-before-read-back', 'kill-in-evidence-write',
      'kill-in-target-call', 'kill-in-ticket-write', 'late', 'out-of-order', 'refuse', 'silent', 'unreachable', 'worker-kill',
    ]);
  });

  it("reads the step outcomes told on a ticket (ServiceNow work notes, Jira comments): a note whose marker lands twice counts once as duplicated, and a step with no Verified note is untold", () => {
    const sim = createServiceNowSimulator({ username: 'u', password: 'p' });
    const sysId = sim.createChange({ number: 'CHG000000001', state: '-1' }).sys_id as string;
    const verified = '[changegate step-a] Verified: joiner svc_a@% on mysql-local — granted 1 privilege(s).';
    sim.updateChange(sysId, { work_notes: `${verified}\n\n[changegate step-b] FAILED: leaver svc_b@% on mysql-local — refused. Closure stays blocked.` });
    sim.updateChange(sysId, { work_notes: 'a person writes here too' });
    const notes = () => sim.journal(sysId, 'work_notes').map((n) => n.value);
    const lines = outcomeLines(notes());
    expect(lines.map((l) => l.marker)).toEqual(['step-a', 'step-b']);
    expect(duplicatedNotes(lines)).toBe(0);
    expect(untold(lines, [{ kind: 'joiner', name: 'svc_a' }, { kind: 'leaver', name: 'svc_b' }])).toEqual([{ kind: 'leaver', name: 'svc_b' }]);
    sim.updateChange(sysId, { work_notes: verified });
    expect(duplicatedNotes(outcomeLines(notes()))).toBe(1);
    // A Jira comment: the tag is a paragraph of its own, the text the next one.
    expect(outcomeLines(['[changegate step-c]\nVerified: leaver svc_c@% on mysql-local — dropped.'])).toEqual([{ marker: 'step-c', text: 'Verified: leaver svc_c@% on mysql-local — dropped.' }]);
  });

  it('a 30-ticket seeded run: no ticket is closable while a step disagrees with its target; after the faults every transient ticket is closable with every step told on it and every permanent one blocked naming its fault; no step or note twice', async () => {
    const report = await runChaos({ seed: 3, tickets: 30 });
    expect(report).toMatchObject({ tickets: 30, invariantViolations: 0, stepsDoneTwice: 0, notesDuplicated: 0, notesMissing: 0, unfinished: [] });
    expect(report.faults['worker-kill']).toBeGreaterThanOrEqual(1);
    // Each aimed fault the plan drew landed (one that did not would be in `unfinished`): the kills at a step's target
    // call, between its apply and read-back, at its evidence commit and at a ticket's outcome write, and the
    // administrator's disturbances of a read-back, once (the ticket then closable) and after every apply (blocked).
    expect(report.faults).toMatchObject({ 'kill-in-target-call': 1, 'kill-before-read-back': 1, 'kill-in-evidence-write': 1, 'kill-in-ticket-write': 1, 'disturbed-once': 1, disturbed: 1 });
    expect(report.closableAfterRecovery).toBe(report.transientTickets);
    expect(report.permanentBlockedNamed).toBe(report.permanentTickets);
    expect(report.permanentTickets).toBeGreaterThan(0);
    // The change manager tried to close tickets throughout: the business rule refused the ones not yet verified.
    expect(report.closed).toBe(report.transientTickets);
    expect(report.closedPermanent).toBe(0);
  }, 600_000);

  it("the checker reports a ticket closable while its target disagrees (an administrator's revoke behind the gateway's back)", async () => {
    // The plan's aimed faults are left out: the control is the checker's, and the run is shorter without their kills.
    const report = await runChaos({ seed: 5, tickets: 8, rogueAdministrator: true, aimed: false });
    expect(report.rogue).toMatch(/^CHG/);
    expect(report.invariantViolations).toBe(1);
    expect(report.violations).toEqual([expect.objectContaining({ ticket: report.rogue, disagreement: expect.stringMatching(/does not exist/) })]);
  }, 600_000);
});

describe("the fault suite's stepsDoneTwice", () => {
  let stack: Stack;
  beforeAll(async () => {
    // A workflow bundle with a test-only kind whose step revokes in two schedulings of the same operation.
    register(twiceEdge);
    const { code } = await bundleWorkflowCode({
      workflowsPath: resolve(__dirname, 'kinds', 'twice-workflows.ts'),
      logger: { trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: console.error, log: () => undefined },
    });
    stack = await startStack({ workflowBundle: { code } });
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it("counts a step whose operation a workflow really scheduled twice, once, and a leaver's single scheduling not at all", async () => {
    const history = async (kind: string) => {
      const account = uniqueAccount('twc');
      await createAccount(stack.admin, account);
      const number = uniqueTicketNumber();
      stack.sim.createChange({ number, state: '-1', u_identity_actions: JSON.stringify([{ kind, system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' } }]) });
      await waitFor(`the ${kind} verified`, async () => (await stack.closureCheck(number)).data.allowed === true, 45_000);
      return stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).fetchHistory();
    };
    const twice = stepsScheduledTwice(await history('twice'));
    expect(twice).toEqual([expect.stringMatching(/^twice:[0-9a-f]{16} \{"op":"revoke"\} x2$/)]);
    expect(stepsScheduledTwice(await history('leaver'))).toEqual([]);
  }, 120_000);
});
