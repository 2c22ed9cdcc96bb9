import { type StepEnd, rate } from './step-ends';
import type { KindShare } from './shapes';

/** How the steps that ended split by action kind, and how often each kind succeeded; every kind listed, in `kinds` order. */
export function kindSplit(ends: readonly StepEnd[], kinds: readonly string[]): { total: number; kinds: KindShare[] } {
  return {
    total: ends.length,
    kinds: kinds.map((kind) => {
      const mine = ends.filter((e) => e.kind === kind);
      const verified = mine.filter((e) => e.verified).length;
      return {
        kind,
        changes: new Set(mine.map((e) => e.ticketKey)).size,
        steps: mine.length,
        verified,
        failed: mine.length - verified,
        successRate: rate(verified, mine.length),
        share: rate(mine.length, ends.length),
      };
    }),
  };
}
