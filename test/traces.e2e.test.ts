import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_TRACING_MODULE } from '../src/worker';
import { type Stack, createAccount, leaverActions, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

/**
 * OpenTelemetry traces on the real stack: a leaver delivered by the ServiceNow simulator's webhook is one trace, from
 * the webhook's span through the signal-with-start, the workflow and the step's activity, exported over OTLP/HTTP to
 * a receiver this test runs.
 */
interface ReceivedSpan { traceId: string; spanId: string; parentSpanId?: string; name: string; attributes: Record<string, unknown>; service: string }

/** A local OTLP/HTTP receiver: POST /v1/traces with the JSON encoding, every span kept. */
async function startReceiver(): Promise<{ endpoint: string; spans: ReceivedSpan[]; paths: string[]; close(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      paths.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans?: Array<{ resource?: { attributes?: Attr[] }; scopeSpans?: Array<{ spans?: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: Attr[] }> }> }>;
      };
      for (const rs of body.resourceSpans ?? []) {
        const service = String(attrs(rs.resource?.attributes)['service.name']);
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) spans.push({ traceId: s.traceId, spanId: s.spanId, ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}), name: s.name, attributes: attrs(s.attributes), service });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    paths,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
type Attr = { key: string; value: Record<string, unknown> };
const attrs = (list: Attr[] | undefined): Record<string, unknown> => Object.fromEntries((list ?? []).map((a) => [a.key, Object.values(a.value)[0]]));

describe('OpenTelemetry traces from the webhook to the connector activity (real Temporal, real MariaDB, simulated ServiceNow)', () => {
  let stack: Stack;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  beforeAll(async () => {
    receiver = await startReceiver();
    const noop = () => undefined;
    const { code } = await bundleWorkflowCode({
      workflowsPath: resolve(__dirname, '..', 'workflows'),
      workflowInterceptorModules: [WORKFLOW_TRACING_MODULE],
      logger: { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop },
    });
    stack = await startStack({ workflowBundle: { code }, traces: { endpoint: receiver.endpoint } });
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
    await receiver?.close();
  }, 60_000);

  it('a leaver from the ServiceNow webhook is one trace: webhook span → signal-with-start → workflow → the step activity', async () => {
    const account = uniqueAccount('otl');
    await createAccount(stack.admin, account);
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-5', u_identity_actions: leaverActions(account) });
    await waitFor('closure allowed', async () => (await stack.closureCheck(number)).data.allowed === true);
    // The workflow's span ends (and is exported) with the workflow: the change is closed, which ends it.
    await waitFor('the gate field verified', () => stack.sim.getChange(change.sys_id as string)?.u_identity_cleanup === 'verified');
    stack.sim.updateChange(change.sys_id as string, { state: '3', close_code: 'successful' });

    const byId = (id: string | undefined) => receiver.spans.find((s) => s.spanId === id);
    const chain = await waitFor('the step activity span and its ancestors exported', () => {
      for (const run of receiver.spans.filter((s) => s.name === 'RunActivity:applyVerifyRecord')) {
        const ancestors: ReceivedSpan[] = [];
        for (let s = byId(run.parentSpanId); s; s = byId(s.parentSpanId)) ancestors.push(s);
        const root = ancestors.at(-1);
        if (root?.name === 'POST /webhooks/servicenow' && root.parentSpanId === undefined) return [run, ...ancestors];
      }
      return null;
    }, 30_000);
    expect(receiver.paths.every((p) => p.startsWith('POST /v1/traces application/json'))).toBe(true);
    expect(new Set(chain.map((s) => s.traceId)).size).toBe(1);
    const names = chain.map((s) => s.name).reverse();
    expect(names[0]).toBe('POST /webhooks/servicenow');
    expect(names[1]).toMatch(/^SignalWithStartWorkflow:/);
    expect(names).toContain('StartActivity:applyVerifyRecord');
    expect(names.at(-1)).toBe('RunActivity:applyVerifyRecord');
    expect(names.some((n) => n.startsWith('RunWorkflow:'))).toBe(true);
    expect(chain[chain.length - 1]?.attributes).toMatchObject({ 'http.response.status_code': 202, 'changegate.source': 'servicenow' });
    // An identity's name is no span's name or attribute.
    expect(JSON.stringify(receiver.spans)).not.toContain(account);
  }, 90_000);
});
