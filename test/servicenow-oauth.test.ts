import { inspect } from 'node:util';
import axios from 'axios';
import { ServiceNowClient, ServiceNowError } from '../src/itsm/servicenow/servicenow-client';
import { ServiceNowTokens } from '../src/itsm/servicenow/servicenow-oauth';
import { createServiceNowSimulator, type ListeningSimulator, type ServiceNowSimulator } from '../src/itsm/servicenow/servicenow-simulator';

/** The ServiceNow client's OAuth against the simulator's `/oauth_token.do` and Table API (no mocks of either side). */
const USER = 'changegate.integration';
const PASSWORD = 'oauth-test-user-password';
const CLIENT = { clientId: 'cg-client-id-0001', clientSecret: 'cg-client-secret-do-not-log' };

describe('ServiceNow OAuth: tokens from /oauth_token.do, refreshed before expiry, never in an error', () => {
  let sim: ServiceNowSimulator;
  let server: ListeningSimulator;
  let sysId: string;

  beforeAll(async () => {
    sim = createServiceNowSimulator({ username: USER, password: PASSWORD, oauth: { ...CLIENT, tokenLifetimeSeconds: 1800 } });
    server = await sim.listen(0);
    sysId = sim.createChange({ number: 'CHG0070001' }).sys_id as string;
  });
  afterAll(async () => {
    await server.close();
  });

  const oauthClient = (grant?: 'password' | 'client_credentials', secret = CLIENT.clientSecret) =>
    new ServiceNowClient({ baseUrl: server.url, username: USER, password: PASSWORD, oauth: { clientId: CLIENT.clientId, clientSecret: secret, ...(grant ? { grant } : {}) } });

  it('the password grant gets a Bearer token once, form-encoded, and the Table API accepts it for every call', async () => {
    const before = sim.oauth.issued.length;
    const client = oauthClient();
    await client.getChange(sysId);
    await client.updateChangeWithWorkNote(sysId, { u_identity_cleanup: 'pending' }, 'via oauth');
    expect(sim.oauth.issued.slice(before).map((t) => t.grant)).toEqual(['password']);
    expect(sim.journal(sysId, 'work_notes').at(-1)).toMatchObject({ value: 'via oauth', sys_created_by: USER });
  });

  it('basic auth stays the default: a client without oauth asks for no token', async () => {
    const before = sim.oauth.issued.length;
    await new ServiceNowClient({ baseUrl: server.url, username: USER, password: PASSWORD }).getChange(sysId);
    expect(sim.oauth.issued.length).toBe(before);
  });

  it('a token that expires mid-run (401) is refreshed with the refresh-token grant and the call goes through', async () => {
    const client = oauthClient();
    await client.getChange(sysId);
    const before = { issued: sim.oauth.issued.length, refused: sim.oauth.refusedBearer };
    sim.oauth.expireAccessTokens();
    await expect(client.getChange(sysId)).resolves.toMatchObject({ sys_id: sysId });
    expect(sim.oauth.refusedBearer).toBe(before.refused + 1);
    expect(sim.oauth.issued.slice(before.issued).map((t) => t.grant)).toEqual(['refresh_token']);
  });

  it('a token is renewed ahead of its announced expiry (refresh-token grant), before the instance refuses it', async () => {
    const short = createServiceNowSimulator({ username: USER, password: PASSWORD, oauth: { ...CLIENT, tokenLifetimeSeconds: 300 } });
    const listening = await short.listen(0);
    try {
      let now = 1_000_000;
      const tokens = new ServiceNowTokens(axios.create({ baseURL: listening.url }), { ...CLIENT, grant: 'password', username: USER, password: PASSWORD }, () => now);
      const first = await tokens.accessToken();
      // Within its lifetime less the margin (a fifth of 300 s, at most a minute): the same token.
      now += 239_000;
      expect(await tokens.accessToken()).toBe(first);
      now += 2_000;
      const second = await tokens.accessToken();
      expect(second).not.toBe(first);
      expect(short.oauth.issued.map((t) => t.grant)).toEqual(['password', 'refresh_token']);
      expect(short.oauth.refusedBearer).toBe(0);
    } finally {
      await listening.close();
    }
  });

  it('a refresh token the instance no longer accepts falls back to the grant, and the call goes through', async () => {
    const own = createServiceNowSimulator({ username: USER, password: PASSWORD, oauth: { ...CLIENT, tokenLifetimeSeconds: 300 } });
    const listening = await own.listen(0);
    try {
      const id = own.createChange({ number: 'CHG0070003' }).sys_id as string;
      const client = new ServiceNowClient({ baseUrl: listening.url, username: USER, password: PASSWORD, oauth: CLIENT });
      await client.getChange(id);
      own.oauth.revokeRefreshTokens();
      own.oauth.expireAccessTokens();
      await expect(client.getChange(id)).resolves.toMatchObject({ sys_id: id });
      expect(own.oauth.issued.map((t) => t.grant)).toEqual(['password', 'password']);
    } finally {
      await listening.close();
    }
  });

  it('client credentials work where the instance enables them and are refused where it does not', async () => {
    await expect(oauthClient('client_credentials').getChange(sysId)).rejects.toMatchObject({ kind: 'refused', status: 400 });
    const enabled = createServiceNowSimulator({ username: USER, password: PASSWORD, oauth: { ...CLIENT, clientCredentials: true } });
    const listening = await enabled.listen(0);
    try {
      const id = enabled.createChange({ number: 'CHG0070002' }).sys_id as string;
      const client = new ServiceNowClient({ baseUrl: listening.url, username: USER, password: PASSWORD, oauth: { ...CLIENT, grant: 'client_credentials' } });
      await expect(client.getChange(id)).resolves.toMatchObject({ sys_id: id });
      expect(enabled.oauth.issued.map((t) => [t.grant, t.refreshToken])).toEqual([['client_credentials', undefined]]);
    } finally {
      await listening.close();
    }
  });

  it('a refused grant is a final refusal whose message, cause chain and inspection hold neither the client secret nor the password', async () => {
    const wrong = 'wrong-client-secret-never-logged';
    const err = await oauthClient('password', wrong).getChange(sysId).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceNowError);
    expect(err).toMatchObject({ kind: 'refused', status: 401, message: 'ServiceNow OAuth password grant refused with HTTP 401 (access_denied)' });
    const seen = inspect(err, { depth: 20, showHidden: true }) + JSON.stringify(err);
    for (const secret of [wrong, CLIENT.clientSecret, PASSWORD]) expect(seen).not.toContain(secret);
  });

  it('a Table API failure after a token was issued does not carry the token (nor the refresh token) in the error', async () => {
    const client = oauthClient();
    await client.getChange(sysId);
    const { accessToken, refreshToken } = sim.oauth.issued.at(-1) ?? {};
    sim.faults.serverError({ status: 500, count: 1 });
    const err = await client.getChange(sysId).catch((e: unknown) => e);
    await sim.faults.restore();
    expect(err).toMatchObject({ kind: 'transient', status: 500 });
    const seen = inspect(err, { depth: 20, showHidden: true });
    expect(accessToken).toBeTruthy();
    expect(seen).not.toContain(accessToken);
    expect(seen).not.toContain(refreshToken);
    expect(seen).toContain('[redacted]');
  });
});
