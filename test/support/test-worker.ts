import type { Context } from '@temporalio/activity';
import { type ActivityInterceptorsFactory, NativeConnection } from '@temporalio/worker';
import { type ConnectorsFile, ConnectorRegistry } from '../../src/connectors/registry';
import { ServiceNowClient } from '../../src/itsm/servicenow/servicenow-client';
import { createWorker } from '../../src/worker';
import { connectorsFile, type Stack } from './stack';
import { TEST_ENV, temporalAddress } from './test-env';

/**
 * The stack's worker, started by the test (a stack started with `inProcessWorker: false`), with the real activities
 * against the real targets, plus the faults a test puts in front of them: activity interceptors (an answer lost
 * after the activity acted, an attempt that fails before it acts) and connector wrappers (a target that acknowledges
 * and does not act).
 */
export async function startTestWorker(
  stack: Stack,
  opts: {
    extraConnectors?: ConnectorsFile['connectors'];
    interceptors?: ActivityInterceptorsFactory[];
    /** Wraps the worker's connector registry (what its activities reach the targets through). */
    registry?: (real: ConnectorRegistry) => ConnectorRegistry;
    /** Where the worker's ServiceNow client writes (a proxy in front of the stack's simulator); the simulator otherwise. */
    servicenowUrl?: string;
  } = {},
): Promise<{ stop(): Promise<void> }> {
  const file = connectorsFile();
  file.connectors.push(...(opts.extraConnectors ?? []));
  const real = new ConnectorRegistry(file);
  const connection = await NativeConnection.connect({ address: temporalAddress });
  const worker = await createWorker({
    connection,
    namespace: 'default',
    taskQueue: stack.taskQueue,
    registry: opts.registry ? opts.registry(real) : real,
    evidence: stack.evidence,
    verdicts: stack.verdicts,
    servicenow: new ServiceNowClient({ baseUrl: opts.servicenowUrl ?? stack.simUrl, username: TEST_ENV.snUser, password: TEST_ENV.snPassword }),
    workflowBundle: { codePath: process.env.CG_TEST_BUNDLE as string },
    ...(opts.interceptors ? { interceptors: { activity: opts.interceptors } } : {}),
  });
  const running = worker.run();
  return {
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await connection.close();
      await real.close();
    },
  };
}

/**
 * An interceptor that, for the first attempt of each activity `matches` picks, either lets it act and then loses its
 * answer (`after`: a retryable failure once the activity's work is done), or fails it before it acts (`before`).
 * `hits` counts the attempts it failed.
 */
export function failFirstAttempt(
  activityType: string,
  when: 'before' | 'after',
  matches: (args: unknown[]) => boolean = () => true,
): { interceptor: ActivityInterceptorsFactory; hits: () => number } {
  let hits = 0;
  const interceptor: ActivityInterceptorsFactory = (ctx: Context) => ({
    inbound: {
      async execute(input, next) {
        const first = ctx.info.activityType === activityType && ctx.info.attempt === 1 && matches(input.args);
        if (first && when === 'before') {
          hits++;
          throw new Error(`${activityType}: the target could not be reached (first attempt, before acting)`);
        }
        const out = await next(input);
        if (first) {
          hits++;
          throw new Error(`${activityType}: the answer was lost after the activity acted`);
        }
        return out;
      },
    },
  });
  return { interceptor, hits: () => hits };
}
