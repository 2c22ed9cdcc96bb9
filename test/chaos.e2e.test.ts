import { createServiceNowSimulator } from '../src/itsm/servicenow/servicenow-simulator';
import { planChaos } from './chaos/plan';
import { runChaos } from './chaos/run';
import { duplicatedNotes, outcomeLines, untold } from './chaos/ticket-notes';

/**
 * The randomized fault suite, small enough for every run of the test suite (`npm run chaos -- --tickets N` runs larger
 * ones): real Temporal dev server, MariaDB, a SCIM provider and a worker process killed with SIGKILL;
 * ServiceNow and Jira simulated with 429/503 windows and outages.
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
        for (const x of t.actions) if (x.permanent) kinds.add(x.permanent);
      }
    }
    expect([...kinds].sort()).toEqual(['direct', 'duplicate', 'itsm-429', 'itsm-503', 'itsm-outage', 'late', 'out-of-order', 'refuse', 'silent', 'unreachable', 'worker-kill']);
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
    expect(report.closableAfterRecovery).toBe(report.transientTickets);
    expect(report.permanentBlockedNamed).toBe(report.permanentTickets);
    expect(report.permanentTickets).toBeGreaterThan(0);
    // The change manager tried to close tickets throughout: the business rule refused the ones not yet verified.
    expect(report.closed).toBe(report.transientTickets);
    expect(report.closedPermanent).toBe(0);
  }, 600_000);

  it("the checker reports a ticket closable while its target disagrees (an administrator's revoke behind the gateway's back)", async () => {
    const report = await runChaos({ seed: 5, tickets: 8, rogueAdministrator: true });
    expect(report.rogue).toMatch(/^CHG/);
    expect(report.invariantViolations).toBe(1);
    expect(report.violations).toEqual([expect.objectContaining({ ticket: report.rogue, disagreement: expect.stringMatching(/does not exist/) })]);
  }, 600_000);
});
