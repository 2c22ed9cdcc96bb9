import axios from 'axios';
import { ServiceNowClient } from '../src/itsm/servicenow/servicenow-client';
import { createServiceNowSimulator, type ListeningSimulator, type ServiceNowSimulator } from '../src/itsm/servicenow/servicenow-simulator';

/**
 * The simulator's fault switches, each seen through the real client as the outbox sees it: the status, the headers
 * of itsm-contracts.md, and the error kind and delay the client derives from them.
 */
const USER = 'changegate.integration';
const PASSWORD = 'faults-test-password';

describe('ServiceNow simulator faults, switched per test', () => {
  let sim: ServiceNowSimulator;
  let server: ListeningSimulator;
  let client: ServiceNowClient;
  let sysId: string;

  beforeAll(async () => {
    sim = createServiceNowSimulator({ username: USER, password: PASSWORD });
    server = await sim.listen(0);
    client = new ServiceNowClient({ baseUrl: server.url, username: USER, password: PASSWORD, timeoutMs: 300 });
    sysId = sim.createChange({ number: 'CHG0080001' }).sys_id as string;
  });
  afterEach(async () => {
    await sim.faults.restore();
  });
  afterAll(async () => {
    await server.close();
  });

  const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

  it('rateLimit answers 429 with the failure envelope, Retry-After and X-RateLimit-* (epoch seconds), for `count` requests', async () => {
    sim.faults.rateLimit({ count: 2, retryAfterSeconds: 7 });
    const res = await axios.get(`${server.url}/api/now/table/change_request/${sysId}`, { auth: { username: USER, password: PASSWORD }, validateStatus: () => true });
    expect(res.status).toBe(429);
    expect(res.data).toEqual({ error: { message: 'Rate limit exceeded', detail: expect.any(String) }, status: 'failure' });
    expect(res.headers['retry-after']).toBe('7');
    const reset = Number(res.headers['x-ratelimit-reset']);
    expect(Math.abs(reset - (Math.floor(Date.now() / 1000) + 7))).toBeLessThanOrEqual(2);
    expect(res.headers['x-ratelimit-rule']).toMatch(/^[0-9a-f]{32}$/);
    expect(await failure(client.getChange(sysId))).toMatchObject({ kind: 'rate_limited', status: 429, retryAfterMs: 7_000 });
    // The third request is past `count`: answered normally.
    await expect(client.getChange(sysId)).resolves.toMatchObject({ sys_id: sysId });
    expect(sim.faults.injected).toBeGreaterThanOrEqual(2);
  });

  it('serverError answers the 5xx it is given, with Retry-After when set, and the client reads the delay from it', async () => {
    sim.faults.serverError({ status: 503, retryAfterSeconds: 30 });
    expect(await failure(client.getChange(sysId))).toMatchObject({ kind: 'transient', status: 503, retryAfterMs: 30_000, message: expect.stringMatching(/^Service Unavailable/) });
    sim.faults.serverError({ status: 502 });
    const plain = await failure(client.getChange(sysId));
    expect(plain).toMatchObject({ kind: 'transient', status: 502 });
    expect((plain as { retryAfterMs?: number }).retryAfterMs).toBeUndefined();
  });

  it('refuseConnections closes the port (ECONNREFUSED) and restore listens again on the same URL', async () => {
    await sim.faults.refuseConnections();
    expect(await failure(client.getChange(sysId))).toMatchObject({ kind: 'transient', message: expect.stringMatching(/no response \(ECONNREFUSED\)/) });
    await sim.faults.restore();
    await expect(client.getChange(sysId)).resolves.toMatchObject({ sys_id: sysId });
  });

  it('slowReplies holds every answer, so a client with a shorter timeout gets a transient timeout', async () => {
    sim.faults.slowReplies(1_000);
    expect(await failure(client.getChange(sysId))).toMatchObject({ kind: 'transient', message: expect.stringMatching(/timed out/) });
  });

  it('refuseWrites answers every write with a 403 ACL refusal (final) while reads still work', async () => {
    sim.faults.refuseWrites();
    expect(await failure(client.updateChange(sysId, { short_description: 'x' }))).toMatchObject({ kind: 'refused', status: 403, message: 'User Not Authorized: ACL Exception Update Failed due to security constraints' });
    await expect(client.getChange(sysId)).resolves.toMatchObject({ sys_id: sysId });
    expect(sim.getChange(sysId)?.short_description).toBe('');
  });
});
