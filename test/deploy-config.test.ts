import { ConfigError, loadConfig } from '../src/config';

/** The deploy webhook's secret is optional (unset or empty: deploy events are refused), and never weak when set. */
describe('DEPLOY_WEBHOOK_SECRET', () => {
  const base = {
    SERVICENOW_URL: 'http://127.0.0.1:8090', SERVICENOW_USERNAME: 'u', SERVICENOW_PASSWORD: 'p',
    SERVICENOW_WEBHOOK_SECRET: 'sn-secret-0123456789', CHANGEGATE_ADMIN_TOKEN: 'admin-token-0123456789',
  };

  it('is unset when absent or empty (as compose passes an unset variable), and kept when long enough', () => {
    expect(loadConfig(base).DEPLOY_WEBHOOK_SECRET).toBeUndefined();
    expect(loadConfig({ ...base, DEPLOY_WEBHOOK_SECRET: '' }).DEPLOY_WEBHOOK_SECRET).toBeUndefined();
    expect(loadConfig({ ...base, DEPLOY_WEBHOOK_SECRET: 'deploy-secret-0123456789' }).DEPLOY_WEBHOOK_SECRET).toBe('deploy-secret-0123456789');
  });

  it('stops start-up, naming the variable, when it is shorter than 16 characters', () => {
    expect(() => loadConfig({ ...base, DEPLOY_WEBHOOK_SECRET: 'short' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, DEPLOY_WEBHOOK_SECRET: 'short' })).toThrow(/DEPLOY_WEBHOOK_SECRET: must be at least 16 characters/);
  });
});
