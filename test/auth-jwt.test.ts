import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import axios from 'axios';
import { exportSPKI, SignJWT, UnsecuredJWT } from 'jose';
import { createApp } from '../src/api/app';
import { rolesFrom } from '../src/auth/jwt-verifier';
import type { OidcSettings } from '../src/auth/oidc-settings';
import { GrammarRegistry } from '../src/connectors/registry';
import { collectingLogger } from './support/collecting-logger';
import { newKey, startTestIssuer, type TestIssuer } from './support/oidc-issuer';
import { connectorsFile, type Stack, startStack } from './support/stack';

describe('people: OIDC bearer JWTs verified against the issuer\'s JWKS', () => {
  let issuer: TestIssuer;
  let stack: Stack;
  let oidc: OidcSettings;
  const logs: string[] = [];

  beforeAll(async () => {
    issuer = await startTestIssuer();
    // No OIDC_JWKS_URL: the key set's address comes from the discovery document.
    oidc = { issuer: issuer.url, audience: 'changegate', rolesClaim: 'realm_access.roles', algorithms: ['RS256', 'ES256', 'EdDSA'], clockToleranceSeconds: 5 };
    stack = await startStack({ oidc, log: collectingLogger(logs) });
  });
  afterAll(async () => {
    await stack.stop();
    await issuer.close();
  });

  const person = (roles: string[], extra: Record<string, unknown> = {}) => ({ sub: 'u-4711', name: 'Pat Example', realm_access: { roles }, ...extra });
  const listTokens = (jwt: string) => axios.get(`${stack.apiUrl}/api/tokens`, { headers: { authorization: `Bearer ${jwt}` }, validateStatus: () => true });

  it.each(['RS256', 'ES256', 'EdDSA'])('admits a token signed with the issuer\'s %s key, with the roles found at realm_access.roles', async (alg) => {
    const key = issuer.keys.find((k) => k.alg === alg);
    const res = await listTokens(await issuer.sign(person(['auditor']), { key }));
    expect(res.status).toBe(200);
    expect(issuer.requests).toEqual(expect.arrayContaining(['/.well-known/openid-configuration', '/protocol/openid-connect/certs']));
  });

  // Each differs from an admitted token in one respect; the logged reason shows it was refused for that one.
  const refusals: Array<[string, string, () => Promise<string>]> = [
    ['from another issuer', 'ERR_JWT_CLAIM_VALIDATION_FAILED', () => issuer.sign(person(['operator']), { issuer: 'https://login.example.com/realms/other' })],
    ['for another audience', 'ERR_JWT_CLAIM_VALIDATION_FAILED', () => issuer.sign(person(['operator']), { audience: 'some-other-api' })],
    ['that has expired', 'expired', () => issuer.sign(person(['operator']), { expiresIn: Math.floor(Date.now() / 1000) - 600 })],
    ['with alg none', 'ERR_JOSE_ALG_NOT_ALLOWED', async () => new UnsecuredJWT(person(['operator'])).setIssuer(issuer.url).setAudience('changegate').setExpirationTime('5m').encode()],
    [
      'signed HS256 with the issuer\'s public key as the HMAC secret',
      'ERR_JOSE_ALG_NOT_ALLOWED',
      async () => {
        const rsa = issuer.keys[0]!;
        const pem = await exportSPKI(rsa.publicKey);
        return new SignJWT(person(['operator'])).setProtectedHeader({ alg: 'HS256', kid: rsa.kid }).setIssuer(issuer.url).setAudience('changegate').setExpirationTime('5m').sign(new TextEncoder().encode(pem));
      },
    ],
    ['naming a key id the issuer does not publish', 'ERR_JWKS_NO_MATCHING_KEY', async () => issuer.sign(person(['operator']), { key: await newKey('RS256', 'rsa-unknown') })],
    ['signed by another key under a published key id', 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED', async () => issuer.sign(person(['operator']), { key: await newKey('RS256', 'rsa-1') })],
  ];

  it.each(refusals)('refuses a token %s with 401 invalid_token (reason %s), and neither the answer nor the log carries it', async (_what, reason, make) => {
    const jwt = await make();
    const res = await listTokens(jwt);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="changegate", error="invalid_token"');
    expect(res.data.error.code).toBe('UNAUTHORIZED');
    expect(JSON.stringify(res.data)).not.toContain(jwt);
    const refused = logs.filter((l) => l.includes('bearer token refused')).map((l) => JSON.parse(l) as { reason: string });
    expect(refused.at(-1)?.reason).toBe(reason);
    expect(logs.join('\n')).not.toContain(jwt.split('.')[1]);
  });

  it('tells an expired token apart in the message', async () => {
    const res = await listTokens(await issuer.sign(person(['auditor']), { expiresIn: Math.floor(Date.now() / 1000) - 600 }));
    expect(res.data.error.message).toBe('the bearer token has expired');
  });

  it('answers 403 to a valid token whose roles claim names no changegate role', async () => {
    const res = await listTokens(await issuer.sign(person(['offline_access', 'uma_authorization'])));
    expect(res.status).toBe(403);
    expect(res.data.error.code).toBe('FORBIDDEN');
  });

  it('records a person who runs an inventory scan as its principal: kind person, the sub, the name', async () => {
    const jwt = await issuer.sign(person(['operator']));
    const res = await axios.post(`${stack.apiUrl}/api/inventory/scan`, { systems: ['mysql-local'] }, { headers: { authorization: `Bearer ${jwt}` }, validateStatus: () => true });
    expect(res.status).toBe(200);
    const rows = await stack.evidence.list(`inventory:${res.data.scanId}`);
    expect(rows.map((r) => r.principal)).toEqual([{ kind: 'person', id: 'u-4711', name: 'Pat Example' }]);
  });

  it('answers 503 UNAVAILABLE, not 401, while the issuer cannot be reached', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const deadIssuer = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const app = createApp({
      ds: stack.ds, workflows: stack.workflows, grammars: new GrammarRegistry(connectorsFile()), evidence: stack.evidence, verdicts: stack.verdicts,
      webhookSecret: 'unused-webhook-secret-0123', adminToken: 'unused-admin-token-0123456789', maxBodyBytes: 1024,
      oidc: { ...oidc, issuer: deadIssuer }, log: collectingLogger([]),
    });
    const server = await new Promise<import('node:http').Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    try {
      const jwt = await issuer.sign(person(['auditor']), { issuer: deadIssuer });
      const res = await axios.get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/tokens`, { headers: { authorization: `Bearer ${jwt}` }, validateStatus: () => true });
      expect(res.status).toBe(503);
      expect(res.data.error.code).toBe('UNAVAILABLE');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('roles claim lookup', () => {
  it('reads a dotted path into nested claims, a claim whose own name has dots, and a space-separated string', () => {
    expect(rolesFrom({ realm_access: { roles: ['auditor', 7] } }, 'realm_access.roles')).toEqual(['auditor']);
    expect(rolesFrom({ 'https://changegate.example/roles': ['operator'] }, 'https://changegate.example/roles')).toEqual(['operator']);
    expect(rolesFrom({ roles: 'auditor operator' }, 'roles')).toEqual(['auditor', 'operator']);
    expect(rolesFrom({ realm_access: {} }, 'realm_access.roles')).toEqual([]);
    expect(rolesFrom({}, 'constructor.name')).toEqual([]);
  });
});
