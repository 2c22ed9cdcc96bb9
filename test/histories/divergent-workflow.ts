import { sleep } from '@temporalio/workflow';

/**
 * Not the change workflow: same name, different commands (a timer where the recorded runs schedule activities or
 * upsert search attributes). test/replay.test.ts replays the committed histories against it to show that the
 * replay check does fail when workflow code diverges from a recorded run.
 */
export async function changeWorkflow(): Promise<void> {
  await sleep('1 day');
}
