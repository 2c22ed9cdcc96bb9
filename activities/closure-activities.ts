import type { ClosureVerdictStore } from '../src/closure/verdict-store';
import type { ClosureView } from '../src/change/closure';

export interface ClosureActivityDeps {
  verdicts: ClosureVerdictStore;
}

export function createClosureActivities({ verdicts }: ClosureActivityDeps) {
  return {
    /** Publishes the workflow's current closure view for closure-check to read without a query. */
    async publishClosureView({ ticketKey, version, view }: { ticketKey: string; version: number; view: ClosureView }): Promise<void> {
      await verdicts.publish(ticketKey, version, view);
    },
  };
}

export type ClosureActivities = ReturnType<typeof createClosureActivities>;
