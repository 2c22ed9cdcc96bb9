import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { GATE_DIGEST_FIELD, GATE_FIELD, identityActionsDigest } from '../src/itsm/servicenow/servicenow-gate';
import { defaultInstallKitDir, loadInstallKit } from '../src/itsm/servicenow/servicenow-business-rules';
import { BLOCK_CLOSE_RULE_NAME, type ListeningSimulator, type ServiceNowSimulator, createServiceNowSimulator } from '../src/itsm/servicenow/servicenow-simulator';
import { verifyWebhookSignature } from '../src/itsm/servicenow/webhook-signature';
import { leaverActions } from './support/actions';

/**
 * The business rules of integrations/servicenow/, run by the simulator exactly as shipped. A person's saves go
 * through the Table API as one user; the gate writes are what the gateway's integration user sends.
 */

const USER = 'kit-user';
const PASSWORD = 'kit-password-7Hq2';
const CHANGES = '/api/now/table/change_request';
const INVALIDATE_RULE_NAME = 'changegate: invalidate identity cleanup on edit';

const leaver = leaverActions;

const running: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function start(webhook?: { url: string; secret: string }, installKitDir?: string): Promise<{ sim: ServiceNowSimulator; server: ListeningSimulator }> {
  const sim = createServiceNowSimulator({ username: USER, password: PASSWORD, webhook, installKitDir });
  const server = await sim.listen(0);
  running.push(server);
  return { sim, server };
}

async function patch(server: ListeningSimulator, sysId: string, body: Record<string, string>): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(`${server.url}${CHANGES}/${sysId}`, {
    method: 'PATCH',
    headers: { Accept: 'application/json', 'Content-Type': 'application/json', Authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** What the gateway writes once it has verified (or found nothing to do for) exactly this actions text. */
const gate = (value: 'verified' | 'not_applicable', actions: string) => ({ [GATE_FIELD]: value, [GATE_DIGEST_FIELD]: identityActionsDigest(actions) });

function expectAbortedByBlockClose(reply: { status: number; json: unknown }): void {
  expect(reply.status).toBe(403);
  expect(reply.json).toEqual({
    error: {
      message: 'Operation Failed',
      detail: expect.stringMatching(new RegExp(`^Operation against file 'change_request' was aborted by Business Rule '${BLOCK_CLOSE_RULE_NAME}\\^[0-9a-f]{32}'\\. `)),
    },
    status: 'failure',
  });
}

describe('ServiceNow install kit: the shipped business rules, installed as their headers say', () => {
  test('every script in integrations/servicenow is installed with the name, timing, order and filter INSTALL.md gives', () => {
    const dir = defaultInstallKitDir();
    const rules = loadInstallKit(dir);
    expect(rules.map((r) => [r.file, r.name, r.when, r.order, r.insert, r.update, r.filter])).toEqual([
      ['changegate-invalidate-gate.js', INVALIDATE_RULE_NAME, 'before', 9900, true, true, 'Identity actions | changes'],
      ['changegate-block-close.js', BLOCK_CLOSE_RULE_NAME, 'before', 10000, true, true, 'State | changes'],
      ['changegate-webhook.js', 'changegate: webhook', 'after', 10000, true, true, 'State | changes OR Approval | changes OR Type | changes OR Identity actions | changes'],
    ]);
    const install = readFileSync(join(dir, 'INSTALL.md'), 'utf8');
    for (const rule of rules) {
      const section = install.split(/^### /m).find((s) => s.startsWith(`${rule.name} — \`${rule.file}\``));
      expect(section).toBeDefined();
      expect(section).toContain(`| Name | \`${rule.name}\``);
      expect(section).toContain(`| When | **${rule.when}** |`);
      expect(section).toMatch(new RegExp(`\\| Order \\| ${rule.order}\\b`));
      expect(section).toContain(`| Insert / Update / Delete / Query | ${rule.insert ? '✔' : '–'} / ${rule.update ? '✔' : '–'} / – / – |`);
      const condition = (c: string) => c.split(' | ').map((p, i) => (i === 1 ? `*${p}*` : `**${p}**`)).join(' · ');
      const filter = rule.filter === '(none)' ? 'none' : rule.filter.split(' OR ').map(condition).join(' **or** ');
      expect(section).toContain(`| Filter conditions | ${filter}`);
    }
  });

  test('a change without identity actions closes although changegate has never written its gate', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({ state: '-1' });

    const closed = await patch(server, change.sys_id, { state: '3', close_code: 'successful' });
    expect(closed.status).toBe(200);
    expect(closed.json.result).toMatchObject({ state: '3', [GATE_FIELD]: '' });
  });

  test('a change without identity actions closes with the not_applicable gate the gateway writes for it', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({ state: '-1' });

    expect((await patch(server, change.sys_id, gate('not_applicable', ''))).status).toBe(200);
    expect((await patch(server, change.sys_id, { state: '3' })).status).toBe(200);
  });

  test('a change with identity actions cannot close before changegate verified them: the gate is pending and the close gets 403', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({ state: '-1', u_identity_actions: leaver('svc_a') });
    // The invalidate rule runs on insert too: the form shows at once that cleanup is open.
    expect(change).toMatchObject({ [GATE_FIELD]: 'pending', [GATE_DIGEST_FIELD]: '' });

    expectAbortedByBlockClose(await patch(server, change.sys_id, { state: '3' }));
    expect(sim.getChange(change.sys_id)?.state).toBe('-1');
  });

  test('after verification, a save that edits the identity actions and closes is refused and applies nothing', async () => {
    const { sim, server } = await start();
    const actions = leaver('svc_a');
    const change = sim.createChange({ state: '-1', u_identity_actions: actions });
    expect((await patch(server, change.sys_id, gate('verified', actions))).status).toBe(200);
    const verified = sim.getChange(change.sys_id);

    expectAbortedByBlockClose(await patch(server, change.sys_id, { u_identity_actions: leaver('svc_b'), state: '3' }));
    expect(sim.getChange(change.sys_id)).toEqual(verified);
  });

  test('after verification, editing the identity actions resets the gate to pending in that save, so a close before the gateway re-judges is refused', async () => {
    const { sim, server } = await start();
    const actions = leaver('svc_a');
    const edited = leaver('svc_b');
    const change = sim.createChange({ state: '-1', u_identity_actions: actions });
    await patch(server, change.sys_id, gate('verified', actions));

    const edit = await patch(server, change.sys_id, { u_identity_actions: edited });
    expect(edit.status).toBe(200);
    expect(edit.json.result).toMatchObject({ u_identity_actions: edited, [GATE_FIELD]: 'pending', [GATE_DIGEST_FIELD]: '' });
    expectAbortedByBlockClose(await patch(server, change.sys_id, { state: '3' }));

    // Once the gateway has verified the new text, the change closes.
    await patch(server, change.sys_id, gate('verified', edited));
    expect((await patch(server, change.sys_id, { state: '3' })).status).toBe(200);
  });

  test('a verdict the gateway wrote for older actions (its write raced an edit) does not open the gate', async () => {
    const { sim, server } = await start();
    const actions = leaver('svc_a');
    const change = sim.createChange({ state: '-1', u_identity_actions: actions });
    await patch(server, change.sys_id, { u_identity_actions: leaver('svc_b') });
    // The gateway's write for the text it had seen lands after the edit.
    await patch(server, change.sys_id, gate('verified', actions));

    expect(sim.getChange(change.sys_id)?.[GATE_FIELD]).toBe('verified');
    expectAbortedByBlockClose(await patch(server, change.sys_id, { state: '3' }));
  });

  test('emptying the identity actions of a change whose cleanup is open does not let it close, in one save or in two', async () => {
    const { sim, server } = await start();
    const change = sim.createChange({ state: '-1', u_identity_actions: leaver('svc_a') });

    expectAbortedByBlockClose(await patch(server, change.sys_id, { u_identity_actions: '', state: '3' }));
    expect((await patch(server, change.sys_id, { u_identity_actions: '' })).json.result[GATE_FIELD]).toBe('pending');
    expectAbortedByBlockClose(await patch(server, change.sys_id, { state: '3' }));

    // The gateway judges the now-empty text once its running steps are done.
    await patch(server, change.sys_id, gate('verified', ''));
    expect((await patch(server, change.sys_id, { state: '3' })).status).toBe(200);
  });

  test('a verified change whose identity actions are unchanged closes', async () => {
    const { sim, server } = await start();
    const actions = leaver('svc_a');
    const change = sim.createChange({ state: '-1', u_identity_actions: actions });
    await patch(server, change.sys_id, gate('verified', actions));

    const closed = await patch(server, change.sys_id, { state: '3', close_code: 'successful' });
    expect(closed.status).toBe(200);
    expect(closed.json.result).toMatchObject({ state: '3', active: 'false', [GATE_FIELD]: 'verified' });
  });

  test('the gateway\'s digest and the rule\'s agree on text beyond ASCII', async () => {
    const { sim, server } = await start();
    const actions = JSON.stringify([{ kind: 'leaver', system: 'mysql-local', identity: { type: 'person', name: 'zoë-😀', host: '%' } }]);
    const change = sim.createChange({ state: '-1', u_identity_actions: actions });
    await patch(server, change.sys_id, gate('verified', actions));

    expect((await patch(server, change.sys_id, { state: '3' })).status).toBe(200);
  });

  test('the webhook after rule sends the saved record, including the gate a before rule reset in the same save, and the gateway\'s own gate write sends nothing', async () => {
    const received: Array<Record<string, string>> = [];
    const receiver = express();
    receiver.post('/hook', express.json(), (req, res) => {
      received.push(req.body as Record<string, string>);
      res.status(202).end();
    });
    const hookServer = http.createServer(receiver);
    await new Promise<void>((resolve) => hookServer.listen(0, '127.0.0.1', resolve));
    running.push({ close: () => new Promise<void>((resolve) => hookServer.close(() => resolve())) });
    const { sim, server } = await start({ url: `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/hook`, secret: 'kit-secret' });

    const change = sim.createChange({ state: '-1' });
    await patch(server, change.sys_id, gate('not_applicable', ''));
    await patch(server, change.sys_id, { u_identity_actions: leaver('svc_a') });
    await sim.waitForDeliveries();

    expect(received.map((r) => [r.sys_mod_count, r[GATE_FIELD], r.u_identity_actions])).toEqual([
      ['0', '', ''],
      ['2', 'pending', leaver('svc_a')],
    ]);
  });

  test('an abort set by an earlier before rule stands when the block-close rule would allow the close', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cg-kit-'));
    try {
      for (const file of readdirSync(defaultInstallKitDir())) copyFileSync(join(defaultInstallKitDir(), file), join(dir, file));
      writeFileSync(
        join(dir, 'site-freeze.js'),
        '/*\n * Business rule "site: change freeze"\n *   When: before   Insert: yes   Update: yes   Order: 100\n *   Filter conditions: State | changes to | Closed\n */\ncurrent.setAbortAction(true);\n',
      );
      const { sim, server } = await start(undefined, dir);
      const change = sim.createChange({ state: '-1' });

      const refused = await patch(server, change.sys_id, { state: '3' });
      expect(refused.status).toBe(403);
      expect(refused.json.error.detail).toMatch(/aborted by Business Rule 'site: change freeze\^/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a shipped rule that calls what ServiceNow does not offer fails the write instead of passing silently', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cg-kit-'));
    try {
      writeFileSync(
        join(dir, 'broken.js'),
        '/*\n * Business rule "broken"\n *   When: before   Insert: yes   Update: yes   Order: 100\n *   Filter conditions: (none)\n */\ncurrent.state.setDisplayValue("Closed");\n',
      );
      const { sim } = await start(undefined, dir);
      expect(() => sim.createChange({})).toThrow(/business rule 'broken' \(broken\.js\) failed/);
      expect(sim.systemLog).toEqual([expect.objectContaining({ level: 'error', source: 'broken' })]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the webhook rule signs with the global GlideCertificateEncryption: a body with non-ASCII text arrives \\uXXXX-escaped, ASCII only, and verifies', async () => {
    const source = readFileSync(join(defaultInstallKitDir(), 'changegate-webhook.js'), 'utf8');
    expect(source).toContain('new GlideCertificateEncryption().generateMac(');
    expect(source).not.toMatch(/(^|[^e])CertificateEncryption\(/m);

    const received: Array<{ raw: Buffer; headers: http.IncomingHttpHeaders }> = [];
    const receiver = express();
    receiver.post('/hook', express.raw({ type: () => true }), (req, res) => {
      received.push({ raw: req.body as Buffer, headers: req.headers });
      res.status(202).end();
    });
    const hookServer = http.createServer(receiver);
    await new Promise<void>((resolve) => hookServer.listen(0, '127.0.0.1', resolve));
    running.push({ close: () => new Promise<void>((resolve) => hookServer.close(() => resolve())) });
    const secret = 'kit-secret-0123456789abcdef';
    const { sim } = await start({ url: `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/hook`, secret });

    const text = 'Zugang für Jürgen – 東京 😀';
    sim.createChange({ state: '-1', short_description: text });
    await sim.waitForDeliveries();

    expect(received).toHaveLength(1);
    const [{ raw, headers }] = received;
    expect([...raw].every((byte) => byte < 0x80)).toBe(true);
    expect(raw.toString('utf8')).toContain('f\\u00fcr J\\u00fcrgen \\u2013 \\u6771\\u4eac \\ud83d\\ude00');
    expect((JSON.parse(raw.toString('utf8')) as { short_description: string }).short_description).toBe(text);
    expect(
      verifyWebhookSignature({
        secret,
        rawBody: raw,
        signature: String(headers['x-changegate-signature']),
        timestamp: String(headers['x-changegate-timestamp']),
        nowSeconds: Math.floor(Date.now() / 1000),
      }),
    ).toEqual({ ok: true });
  });

  test('a global rule that calls the scoped CertificateEncryption fails, as it does in the global scope', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cg-kit-'));
    try {
      writeFileSync(
        join(dir, 'scoped-mac.js'),
        '/*\n * Business rule "scoped mac"\n *   When: after   Insert: yes   Update: yes   Order: 100\n *   Filter conditions: (none)\n */\n' +
          'new CertificateEncryption().generateMac("a2V5", "HmacSHA256", "data");\n',
      );
      const { sim } = await start(undefined, dir);
      expect(() => sim.createChange({})).toThrow(/CertificateEncryption is not defined/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('every state listed in x_changegate.closed_states is gated like Closed; other state changes are not', async () => {
    const { sim, server } = await start();
    sim.setProperty('x_changegate.closed_states', '3, 7');
    const actions = leaver('svc_a');
    const change = sim.createChange({ state: '-1', u_identity_actions: actions });

    expectAbortedByBlockClose(await patch(server, change.sys_id, { state: '7' }));
    expectAbortedByBlockClose(await patch(server, change.sys_id, { state: '3' }));
    expect((await patch(server, change.sys_id, { state: '0' })).status).toBe(200);
    await patch(server, change.sys_id, gate('verified', actions));
    expect((await patch(server, change.sys_id, { state: '7' })).json.result).toMatchObject({ state: '7' });
  });

  test('without the webhook properties the after rule sends nothing and logs why', async () => {
    const { sim } = await start();
    const change = sim.createChange({});
    expect(sim.deliveries).toEqual([]);
    expect(sim.systemLog).toEqual([
      { level: 'error', source: 'changegate: webhook', message: expect.stringContaining(`${change.number} was not sent`) },
    ]);
  });
});
