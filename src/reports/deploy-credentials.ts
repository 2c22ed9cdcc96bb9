import type { EvidenceView } from '../evidence/evidence-store';
import { ticketOf } from './step-ends';
import type { LiveCredential } from './shapes';

/** A revocation's step id names its run: `deploy:<actionId>:run:<runId>:revoke` (a run id has no colon). */
const REVOKE_STEP = /:run:([^:]+):revoke$/;

/**
 * Pipeline runs' credentials as deploy evidence records them: each verified mint, each verified revocation (paired
 * by ticket and run), failed revocations, and the ones minted and not (yet) revoked. A revocation that failed and was
 * tried again until it verified counts as revoked.
 */
export function deployCredentials(rows: readonly EvidenceView[]) {
  const runOf = (r: EvidenceView) => {
    // A failure the workflow recorded (the revocation gave up on an unreachable target) has the step's desired state
    // only, without the run: its step id names it.
    const run = (r.desiredState as { run?: unknown }).run ?? REVOKE_STEP.exec(r.stepId)?.[1];
    return typeof run === 'string' ? `${r.ticketKey}\u0000${run}` : undefined;
  };
  const minted = new Map<string, EvidenceView>();
  const revoked = new Set<string>();
  const failedRevocation = new Set<string>();
  for (const r of rows) {
    const run = runOf(r);
    if (!run) continue;
    if (r.outcome === 'minted' && r.verified) minted.set(run, r);
    else if (r.outcome === 'revoked' && r.verified) revoked.add(run);
    else if (r.outcome === 'failed' && r.stepId.endsWith(':revoke')) failedRevocation.add(run);
  }
  const live: LiveCredential[] = [...minted.entries()]
    .filter(([run]) => !revoked.has(run))
    .map(([run, r]) => {
      const to = (r.desiredState as { deliveredTo?: { system?: unknown; path?: unknown } }).deliveredTo;
      return {
        ...ticketOf(r.ticketKey),
        runId: String((r.desiredState as { run: string }).run),
        system: r.system,
        identity: String((r.identity as { name?: unknown }).name ?? ''),
        deliveredTo: to && typeof to.system === 'string' ? `${to.system}:${String(to.path ?? '')}` : null,
        mintedAt: r.verifiedAt ?? r.recordedAt,
        revocationFailed: failedRevocation.has(run),
      };
    })
    .sort((a, b) => a.mintedAt.localeCompare(b.mintedAt));
  const revokedOfMinted = [...minted.keys()].filter((run) => revoked.has(run)).length;
  const bySystem = new Map<string, { system: string; minted: number; revoked: number; live: number }>();
  for (const [run, r] of minted) {
    const s = bySystem.get(r.system) ?? { system: r.system, minted: 0, revoked: 0, live: 0 };
    s.minted++;
    if (revoked.has(run)) s.revoked++;
    else s.live++;
    bySystem.set(r.system, s);
  }
  return {
    minted: minted.size,
    revoked: revokedOfMinted,
    live: live.length,
    failedRevocations: live.filter((l) => l.revocationFailed).length,
    bySystem: [...bySystem.values()].sort((a, b) => a.system.localeCompare(b.system)),
    credentials: live,
  };
}
