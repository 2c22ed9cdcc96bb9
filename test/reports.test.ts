import type { EvidenceView } from '../src/evidence/evidence-store';
import { deployCredentials } from '../src/reports/deploy-credentials';
import { latencySeries } from '../src/reports/latency';
import { quantile, stepEnds } from '../src/reports/step-ends';

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
let seq = 0;
function row(fields: Partial<EvidenceView>): EvidenceView {
  seq++;
  return {
    ticketKey: 'servicenow:CHG1', stepId: `s${seq}`, outcome: 'granted', actionKind: 'joiner', system: 'db', identity: { name: 'svc' }, desiredState: {}, observedState: {},
    verified: true, verification: {}, actor: 'test', eventReceivedAt: at(0), startedAt: at(0), verifiedAt: at(1), seq, recordedAt: at(1), prevHash: '', hash: `h${seq}`, ...fields,
  };
}

describe('reports computed from evidence rows', () => {
  it('a step that failed and then verified ends verified once, counting the attempts of both rows; a claim is no end', () => {
    const ends = stepEnds(
      [
        row({ stepId: 'revoke', outcome: 'failed', verified: false, verifiedAt: null, verification: { error: 'unreachable', attempts: { activity: 3 } } }),
        row({ stepId: 'revoke', outcome: 'revoked', verification: { attempts: { activity: 2, readBack: 2 } } }),
        row({ stepId: 'run', outcome: 'claimed' }),
        row({ stepId: 'move', actionKind: 'mover', outcome: 'failed', verified: false, verifiedAt: null, verification: { mismatches: ['missing grant: X'] } }),
        row({ stepId: 'note', actionKind: 'leak-report', outcome: 'unmatched', verified: false }),
      ],
      ['joiner', 'mover'],
    );
    expect(ends.map((e) => [e.stepId, e.verified, e.retries, e.reReads, e.detail])).toEqual([
      ['revoke', true, 3, 1, undefined],
      ['move', false, 0, 0, 'not verified: missing grant: X'],
    ]);
  });

  it('quantiles are nearest-rank; none of nothing', () => {
    expect(quantile([], 0.5)).toBeNull();
    expect(quantile([10], 0.95)).toBe(10);
    expect(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5)).toBe(5);
    expect(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95)).toBe(10);
  });

  it('latency buckets by when the step ended; an empty bucket has no quantiles, not zero', () => {
    const hour = 3_600_000;
    const base = Date.UTC(2026, 0, 1);
    const ends = stepEnds(
      [
        row({ eventReceivedAt: new Date(base).toISOString(), verifiedAt: new Date(base + 2_000).toISOString() }),
        row({ eventReceivedAt: new Date(base).toISOString(), verifiedAt: new Date(base + 4_000).toISOString() }),
        row({ outcome: 'failed', verified: false, verifiedAt: null, recordedAt: new Date(base + 2 * hour + 5).toISOString() }),
      ],
      ['joiner'],
    );
    const out = latencySeries(ends, { since: new Date(base), until: new Date(base + 3 * hour) }, 'hour');
    expect(out.overall).toEqual({ verified: 2, p50Ms: 2_000, p95Ms: 4_000 });
    expect(out.points.map((p) => [p.verified, p.failed, p.p50Ms, p.p95Ms])).toEqual([[2, 0, 2_000, 4_000], [0, 0, null, null], [0, 1, null, null]]);
  });

  it('a deploy credential is live until a verified revocation of the same ticket and run; a failed revocation marks it', () => {
    const mint = (t: string, run: string) => row({ ticketKey: t, actionKind: 'deploy', outcome: 'minted', desiredState: { run, deliveredTo: { system: 'vault', path: `p/${run}` } }, identity: { name: `svc_${run}` } });
    const out = deployCredentials([
      mint('servicenow:CHG1', 'r1'), mint('servicenow:CHG1', 'r2'), mint('servicenow:CHG2', 'r1'),
      row({ ticketKey: 'servicenow:CHG1', actionKind: 'deploy', stepId: 'd:run:r1:revoke', outcome: 'revoked', desiredState: { run: 'r1' } }),
      row({ ticketKey: 'servicenow:CHG2', actionKind: 'deploy', stepId: 'd:run:r1:revoke', outcome: 'failed', verified: false, desiredState: { run: 'r1' } }),
    ]);
    expect(out).toMatchObject({ minted: 3, revoked: 1, live: 2, failedRevocations: 1, bySystem: [{ system: 'db', minted: 3, revoked: 1, live: 2 }] });
    expect(out.credentials.map((c) => [c.ticket, c.runId, c.deliveredTo, c.revocationFailed])).toEqual([['CHG1', 'r2', 'vault:p/r2', false], ['CHG2', 'r1', 'vault:p/r1', true]]);
  });

  it('a revocation that failed on an unreachable target (a row naming its run by step id only) marks the credential, and one tried again until verified counts it revoked', () => {
    const mint = (run: string) => row({ ticketKey: 'servicenow:CHG3', actionKind: 'deploy', outcome: 'minted', desiredState: { run, deliveredTo: { system: 'vault', path: `p/${run}` } } });
    // What recordFailure writes for a deploy run's revocation: the desired state of the step, no run in it.
    const failed = (run: string) => row({ ticketKey: 'servicenow:CHG3', actionKind: 'deploy', stepId: `deploy:a1:run:${run}:revoke`, outcome: 'failed', verified: false, verifiedAt: null, desiredState: { exists: false } });
    const failing = deployCredentials([mint('r1'), mint('r2'), failed('r1'), failed('r2'), failed('r2')]);
    expect(failing).toMatchObject({ minted: 2, revoked: 0, live: 2, failedRevocations: 2 });
    const retried = deployCredentials([
      mint('r1'), mint('r2'), failed('r1'), failed('r2'), failed('r2'),
      row({ ticketKey: 'servicenow:CHG3', actionKind: 'deploy', stepId: 'deploy:a1:run:r2:revoke', outcome: 'revoked', desiredState: { exists: false, run: 'r2' } }),
    ]);
    expect(retried).toMatchObject({ minted: 2, revoked: 1, live: 1, failedRevocations: 1 });
    expect(retried.credentials.map((c) => [c.runId, c.revocationFailed])).toEqual([['r1', true]]);
  });
});
