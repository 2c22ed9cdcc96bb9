import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { portAnswers } from '../src/launcher/child-process';
import { startDemoOpenBao } from '../src/launcher/demo-openbao';
import { BAO_BIN } from './support/servers/openbao';
import { freePort } from './support/servers/process';

/**
 * The demo secrets store `npm start` runs for vault-local: an OpenBao dev server in its own checkout-like directory,
 * accepting the root token from the demo secrets, giving the gateway a token that reaches only its KV prefix, and
 * gone (port closed) when stopped. A leftover of a launcher that was killed hard is stopped before a new one starts.
 */
describe('demo secrets store (OpenBao dev server for vault-local)', () => {
  const root = mkdtempSync(join(tmpdir(), 'cg-demo-bao-'));
  const warnings: string[] = [];
  const log = { info: () => undefined, warn: (msg: string) => void warnings.push(msg) };
  beforeAll(() => {
    mkdirSync(join(root, '.venv/bin'), { recursive: true });
    symlinkSync(BAO_BIN, join(root, '.venv/bin/bao'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const kvWrite = (address: string, token: string, path: string) =>
    fetch(`${address}/v1/secret/data/${path}`, { method: 'POST', headers: { 'X-Vault-Token': token, 'content-type': 'application/json' }, body: JSON.stringify({ data: { value: 'x' } }) }).then((r) => r.status);

  it("starts with the demo root token, gives the gateway a token for its KV prefix only, and stops on stop()", async () => {
    const port = await freePort();
    const rootToken = `demo-root-${Date.now()}`;
    const bao = await startDemoOpenBao(root, rootToken, log, port);
    expect(bao).toBeDefined();
    try {
      expect(await kvWrite(bao!.address, bao!.gatewayToken, 'changegate/apps/x')).toBe(200);
      expect(await kvWrite(bao!.address, bao!.gatewayToken, 'elsewhere/x')).toBe(403);
      expect(await kvWrite(bao!.address, rootToken, 'elsewhere/x')).toBe(200);
    } finally {
      await bao!.stop();
    }
    expect(await portAnswers(port)).toBe(false);
  });

  it("stops the leftover of a launcher that was killed, instead of failing on the taken port", async () => {
    const port = await freePort();
    const first = await startDemoOpenBao(root, 'demo-root-one', log, port);
    expect(first).toBeDefined();
    const second = await startDemoOpenBao(root, 'demo-root-two', log, port);
    try {
      expect(second).toBeDefined();
      expect(await kvWrite(second!.address, 'demo-root-two', 'changegate/y')).toBe(200);
    } finally {
      await second?.stop();
      await first?.stop();
    }
    expect(await portAnswers(port)).toBe(false);
  });

  it('without the demo root token (setup not run) it starts nothing and says so', async () => {
    expect(await startDemoOpenBao(root, undefined, log, await freePort())).toBeUndefined();
    expect(warnings.join(' ')).toMatch(/run scripts\/setup.sh/);
  });
});
