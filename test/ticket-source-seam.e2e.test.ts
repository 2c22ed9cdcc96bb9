import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import axios from 'axios';
import { parseIdentityActions } from '../src/actions/plan-actions';
import type { Phase, TicketRef } from '../src/change';
import { register } from '../src/itsm/registry';
import { type GateWrite, type TicketSource, headerValue, parseJsonBody } from '../src/itsm/source';
import { type Stack, createAccount, startStack, uniqueAccount, waitFor } from './support/stack';

/**
 * A made-up ITSM, defined only here and registered at runtime: if the core still assumed ServiceNow anywhere on the
 * path from webhook to closure-check, a leaver from this source would not get through.
 */
const FAKE_SECRET = 'fake-itsm-secret-9876543210';
const SIGNATURE_HEADER = 'x-fake-signature';
const DELIVERY_HEADER = 'x-fake-delivery';
const STATUS_PHASES: Record<string, Phase> = { Open: 'draft', Review: 'authorization', Doing: 'implement', Done: 'closed', Dropped: 'cancelled' };

function fakeSign(raw: Buffer): string {
  return `hmac=${createHmac('sha256', FAKE_SECRET).update(raw).digest('hex')}`;
}

/** What the fake ITSM's write-back adapter received, per record id. */
const notes = new Map<string, Array<{ marker: string; text: string }>>();
const gates = new Map<string, GateWrite[]>();

const fake: TicketSource = {
  name: 'fake',
  keyPattern: /^FAKE-\d{1,6}$/,
  keyExample: 'FAKE-12',
  verifyDelivery({ raw, headers }) {
    const given = Buffer.from(headerValue(headers, SIGNATURE_HEADER) ?? '');
    const expected = Buffer.from(fakeSign(raw));
    return given.length === expected.length && timingSafeEqual(given, expected) ? { ok: true } : { ok: false, reason: 'fake-signature-mismatch' };
  },
  parseDelivery({ raw, headers, receivedAt }, grammars) {
    const json = parseJsonBody(raw);
    if (!json.ok) return json;
    const body = json.body as { id: string; key: string; rev: number; status: string; urgent: boolean; reporter?: string; actions: unknown[] };
    const phase = STATUS_PHASES[body.status];
    if (!phase) return { ok: false, code: 'VALIDATION_FAILED', message: 'invalid fake delivery', issues: [{ path: 'status', message: 'unknown status' }] };
    const text = JSON.stringify(body.actions);
    const actions = parseIdentityActions(text, grammars, 'actions');
    if (!actions.ok) return { ok: false, code: 'VALIDATION_FAILED', message: 'invalid fake delivery', issues: actions.issues };
    const eventId = headerValue(headers, DELIVERY_HEADER) ?? `${body.id}:${body.rev}`;
    return {
      ok: true,
      snapshot: {
        source: 'fake', key: body.key, recordId: body.id, phase, emergency: body.urgent, requester: body.reporter, version: body.rev,
        sourceState: body.status, actions: actions.value, actionsDigest: createHash('sha256').update(text).digest('hex'),
        eventId, receivedAt: receivedAt.toISOString(),
      },
      dedup: { eventId, recordId: body.id, version: body.rev },
    };
  },
  writeBack() {
    return {
      async postNote(ticket: TicketRef, marker: string, text: string) {
        const list = notes.get(ticket.recordId) ?? [];
        notes.set(ticket.recordId, list);
        if (list.some((n) => n.marker === marker)) return { posted: false };
        list.push({ marker, text });
        return { posted: true };
      },
      async setGate(ticket: TicketRef, gate: GateWrite) {
        gates.set(ticket.recordId, [...(gates.get(ticket.recordId) ?? []), gate]);
      },
    };
  },
};

describe('a ticket source registered at runtime (a fake ITSM defined in this test) runs end to end', () => {
  let stack: Stack;
  beforeAll(async () => {
    register(fake);
    stack = await startStack();
  });
  afterAll(async () => {
    await stack.stop();
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const raw = Buffer.from(JSON.stringify(body));
    return axios.post(`${stack.apiUrl}${path}`, raw, {
      headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: fakeSign(raw), [DELIVERY_HEADER]: randomUUID(), ...headers },
      validateStatus: () => true,
    });
  };
  const get = async (path: string) =>
    axios.get(`${stack.apiUrl}${path}`, { headers: { authorization: `Bearer ${(await stack.tokenFor('change-manager')).token}` }, validateStatus: () => true });
  const leaverOf = (name: string) => [{ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' } }];

  it('POST /webhooks/fake revokes the MariaDB account, records verified evidence under fake:FAKE-12, notes the fake ticket and allows closure; a repeated record version is a duplicate and Done completes the workflow', async () => {
    const account = uniqueAccount('fake');
    await createAccount(stack.admin, account);
    const delivery = { id: 'rec-10012', key: 'FAKE-12', rev: 1, status: 'Open', urgent: true, reporter: 'alice', actions: leaverOf(account) };

    const accepted = await post('/webhooks/fake', delivery);
    expect(accepted.status).toBe(202);
    expect(accepted.data).toEqual({ workflowId: 'change-fake-FAKE-12', duplicate: false });

    await waitFor('account to be dropped', async () => !(await stack.accountExists(account)));
    const rows = await waitFor('verified evidence', async () => {
      const r = await stack.evidence.list('fake:FAKE-12');
      return r.length === 1 ? r : null;
    });
    expect(rows[0]).toMatchObject({ outcome: 'revoked', verified: true, actionKind: 'leaver', system: 'mysql-local' });
    expect(await stack.evidence.verifyChain('fake:FAKE-12')).toEqual({ valid: true, rows: 1 });

    const noted = await waitFor('the work note in the fake adapter', () => notes.get('rec-10012')?.find((n) => n.text.startsWith('Verified: leaver')));
    expect(noted.text).toContain(account);
    const digest = createHash('sha256').update(JSON.stringify(delivery.actions)).digest('hex');
    await waitFor('the verified gate in the fake adapter', () => gates.get('rec-10012')?.some((g) => g.value === 'verified' && g.digest === digest));

    // closure-check reads the view the workflow publishes after writing the gate, so it can trail the gate briefly.
    const check = await waitFor('closure-check to allow closure', async () => {
      const r = await get('/api/changes/fake/FAKE-12/closure-check');
      return r.status === 200 && r.data.allowed === true ? r : null;
    });
    expect(check.data).toMatchObject({ ticket: 'FAKE-12', allowed: true, reasons: [], ticketState: 'Open', phase: 'draft', evidence: { rows: 1, chainValid: true } });
    const evidence = await get('/api/changes/fake/FAKE-12/evidence');
    expect(evidence.status).toBe(200);
    expect(evidence.data).toMatchObject({ ticket: 'FAKE-12', chain: { valid: true } });
    expect(await stack.workflows.status('fake', 'FAKE-12')).toMatchObject({ phase: 'draft', emergency: true, requester: 'alice', version: 1 });

    // The fake's own dedup key: the same record at the same version is a repeat, whatever the delivery id.
    const again = await post('/webhooks/fake', delivery);
    expect(again.data).toEqual({ workflowId: 'change-fake-FAKE-12', duplicate: true });

    // Its own phases end the workflow: Done maps to closed.
    expect((await post('/webhooks/fake', { ...delivery, rev: 2, status: 'Done' })).status).toBe(202);
    await waitFor('the workflow to complete', async () => {
      const d = await stack.workflows.client.workflow.getHandle('change-fake-FAKE-12').describe();
      return d.status.name === 'COMPLETED';
    });
  });

  it("a fake delivery with a wrong signature is 401 with the fake source's own reason, and starts nothing", async () => {
    const res = await post('/webhooks/fake', { id: 'rec-77', key: 'FAKE-77', rev: 1, status: 'Open', urgent: false, actions: [] }, { [SIGNATURE_HEADER]: 'hmac=00' });
    expect(res.status).toBe(401);
    expect(res.data.error).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/fake-signature-mismatch/) });
    expect(await stack.workflows.status('fake', 'FAKE-77')).toBeNull();
  });

  it('each source checks keys against its own pattern: a ServiceNow number is 400 under fake, a fake key is 400 under servicenow', async () => {
    const underFake = await get('/api/changes/fake/CHG0030001/closure-check');
    expect(underFake.status).toBe(400);
    expect(underFake.data.error.issues).toEqual([{ path: 'path.number', message: 'must look like FAKE-12' }]);
    const underServiceNow = await get('/api/changes/servicenow/FAKE-12/closure-check');
    expect(underServiceNow.status).toBe(400);
    expect(underServiceNow.data.error.issues).toEqual([{ path: 'path.number', message: 'must look like CHG0030001' }]);
  });

  it('an unregistered source is 404 naming the registered ones, on the webhook and on the change routes', async () => {
    const webhook = await post('/webhooks/nope', {});
    expect(webhook.status).toBe(404);
    expect(webhook.data.error).toEqual({ code: 'NOT_FOUND', message: "no ticket source named 'nope' (registered: servicenow, jira, fake)", issues: [] });
    const check = await get('/api/changes/nope/NOPE-1/closure-check');
    expect(check.status).toBe(404);
    expect(check.data.error.message).toBe("no ticket source named 'nope' (registered: servicenow, jira, fake)");
  });
});
