import { defineSignal, proxyActivities, setHandler } from '@temporalio/workflow';
import type * as activities from './activities';

const { touch } = proxyActivities<typeof activities>({ startToCloseTimeout: '10 seconds' });

export const goSignal = defineSignal<[string]>('go');

/** The floor the benchmarks compare against: signal-with-start of a workflow that runs one trivial activity. */
export async function bareWorkflow(): Promise<string> {
  setHandler(goSignal, () => undefined);
  return touch();
}
