import { ConfigError, loadConfig, servicenowCredentials, writeBackBackoff } from '../src/config';

/** ServiceNow's authentication and the outbox's back-off ceiling, as configuration (src/config.ts). */
describe('ServiceNow auth and outbox back-off configuration', () => {
  const base = {
    SERVICENOW_URL: 'http://127.0.0.1:8090', SERVICENOW_USERNAME: 'u', SERVICENOW_PASSWORD: 'p',
    SERVICENOW_WEBHOOK_SECRET: 'sn-secret-0123456789', CHANGEGATE_ADMIN_TOKEN: 'admin-token-0123456789',
  };

  it('is basic auth by default, and a five-minute back-off ceiling', () => {
    const config = loadConfig(base);
    expect(servicenowCredentials(config)).toEqual({ username: 'u', password: 'p' });
    expect(writeBackBackoff(config)).toEqual({ initialMs: 1_000, maxMs: 300_000 });
  });

  it('oauth takes the client and the grant (password by default), the empty values compose passes counting as unset', () => {
    const oauth = loadConfig({ ...base, SERVICENOW_AUTH: 'oauth', SERVICENOW_OAUTH_CLIENT_ID: 'cid', SERVICENOW_OAUTH_CLIENT_SECRET: 'csecret' });
    expect(servicenowCredentials(oauth)).toEqual({ username: 'u', password: 'p', oauth: { clientId: 'cid', clientSecret: 'csecret', grant: 'password' } });
    expect(servicenowCredentials(loadConfig({ ...base, SERVICENOW_OAUTH_CLIENT_ID: '', SERVICENOW_OAUTH_CLIENT_SECRET: '' }))).toEqual({ username: 'u', password: 'p' });
  });

  it('stops start-up, naming each missing variable, when oauth lacks its client', () => {
    const run = () => loadConfig({ ...base, SERVICENOW_AUTH: 'oauth', SERVICENOW_OAUTH_CLIENT_SECRET: '' });
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(/SERVICENOW_OAUTH_CLIENT_ID: is required when SERVICENOW_AUTH is oauth/);
    expect(run).toThrow(/SERVICENOW_OAUTH_CLIENT_SECRET: is required when SERVICENOW_AUTH is oauth/);
    expect(() => loadConfig({ ...base, SERVICENOW_AUTH: 'digest' })).toThrow(/SERVICENOW_AUTH/);
    expect(() => loadConfig({ ...base, SERVICENOW_OAUTH_GRANT: 'implicit' })).toThrow(/SERVICENOW_OAUTH_GRANT/);
  });

  it('takes a back-off ceiling from one second to an hour, and refuses others naming the variable', () => {
    expect(writeBackBackoff(loadConfig({ ...base, CHANGEGATE_WRITEBACK_MAX_BACKOFF: 'PT30S' })).maxMs).toBe(30_000);
    expect(() => loadConfig({ ...base, CHANGEGATE_WRITEBACK_MAX_BACKOFF: 'PT2H' })).toThrow(/CHANGEGATE_WRITEBACK_MAX_BACKOFF: must be between PT1S and PT1H/);
    expect(() => loadConfig({ ...base, CHANGEGATE_WRITEBACK_MAX_BACKOFF: '5 minutes' })).toThrow(/CHANGEGATE_WRITEBACK_MAX_BACKOFF: must be an ISO-8601 duration/);
  });
});
