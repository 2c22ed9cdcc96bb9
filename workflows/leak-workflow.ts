import { proxyActivities } from '@temporalio/workflow';
import type { LeakActivities } from '../activities/leak-activities';
import type { LeakReport } from '../src/leaks/leak-report';

const leaks = proxyActivities<LeakActivities>({
  startToCloseTimeout: '1 minute',
  // The ITSM may be down for a while: the change is opened once it answers (the correlation id finds a change an
  // attempt opened before its answer was lost).
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 50 },
});

export interface LeakOutcome {
  matched: boolean;
  change?: { source: string; key: string };
  run?: { runId: string; result: string };
}

/**
 * One leaked-secret report (one per fingerprint: the workflow id is the fingerprint's). A credential the gateway
 * rotated is rotated again by an emergency change opened in the ITSM its rotation came from; a pipeline run's
 * credential ends with its run; anything else is recorded as an unmatched leak for a person to follow.
 */
export async function leakWorkflow(report: LeakReport): Promise<LeakOutcome> {
  const match = await leaks.matchLeak({ fingerprint: report.fingerprint });
  if (!match) {
    await leaks.recordLeak({ report, outcome: 'unmatched' });
    return { matched: false };
  }
  if (match.delivery === 'deploy-run' && match.runId !== undefined) {
    // A pipeline run's credential lives only as long as its run: ending the run revokes it, verified.
    const { result } = await leaks.endLeakedRun({ report, match });
    const run = { runId: match.runId, result };
    await leaks.recordLeak({ report, outcome: 'run-ended', match, run });
    return { matched: true, run };
  }
  const opened = await leaks.openLeakChange({ report, match });
  const change = { source: opened.source, key: opened.key };
  await leaks.recordLeak({ report, outcome: 'rotation-opened', match, change });
  return { matched: true, change };
}
