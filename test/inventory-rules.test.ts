import { parseIdentityActions } from '../src/actions/plan-actions';
import { discoveryIntervalMs, loadConfig } from '../src/config';
import { parseConnectorsFile, GrammarRegistry } from '../src/connectors/registry';
import { applyStep, type StepChange } from '../src/inventory/inventory-store';
import { ruleAttribution } from '../src/inventory/ownership';
import { InventoryIdentity } from '../src/persistence/entities/inventory-identity.entity';
import { VaultGrammar } from '../src/connectors/vault/vault-grammar';
import { connectorsFile } from './support/stack';

/** What an action, a connector file and the configuration may say about ownership and discovery, checked before anything runs. */
describe('owner and workload on every action', () => {
  const grammars = new GrammarRegistry(connectorsFile());
  const parse = (extra: object, kind: 'leaver' | 'joiner' = 'leaver') =>
    parseIdentityActions(
      JSON.stringify([{ kind, system: 'mysql-local', identity: { type: 'service_account', name: 'svc_app', host: '%' }, ...(kind === 'joiner' ? { grants: ['SELECT ON cgt_billing.*'], ttl: 'PT1H' } : {}), ...extra }]),
      grammars,
      'u_identity_actions',
    );

  it('carries owner and workload of any kind into the planned action', () => {
    for (const kind of ['leaver', 'joiner'] as const) {
      const result = parse({ owner: 'team-billing', workload: 'billing-api' }, kind);
      expect(result).toMatchObject({ ok: true, value: [{ kind, owner: 'team-billing', workload: 'billing-api' }] });
    }
    expect(parse({})).toMatchObject({ ok: true, value: [expect.not.objectContaining({ owner: expect.anything() })] });
  });

  it.each([
    [{ owner: '' }, 'u_identity_actions[0].owner', /empty/],
    [{ owner: 'x'.repeat(201) }, 'u_identity_actions[0].owner', /200/],
    [{ owner: 'jdoe\nFAKE LOG LINE' }, 'u_identity_actions[0].owner', /control characters/],
    [{ workload: 'billing\u0000api' }, 'u_identity_actions[0].workload', /control characters/],
    [{ workload: 'billing\u2028api' }, 'u_identity_actions[0].workload', /control characters/],
    [{ workload: ' billing' }, 'u_identity_actions[0].workload', /white space/],
    [{ owner: 42 }, 'u_identity_actions[0].owner', /string/],
  ])('refuses %j with the field named', (extra, path, message) => {
    const result = parse(extra);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.issues).toEqual([{ path, message: expect.stringMatching(message) }]);
  });
});

describe('policy.ownership rules in the connector file', () => {
  const withRules = (ownership: unknown) => () =>
    parseConnectorsFile({ connectors: [{ ...connectorsFile().connectors[0], policy: { ownership } }] });

  it('accepts name-prefix and attribute rules', () => {
    expect(withRules([{ namePrefix: 'svc_billing', owner: 'team-billing', workload: 'billing-api' }, { attribute: 'departmentNumber', equals: '42', owner: 'team-42' }])).not.toThrow();
  });

  it.each([
    [[{ owner: 'x' }], /exactly one of namePrefix or attribute/],
    [[{ namePrefix: 'a', attribute: 'ou', owner: 'x' }], /exactly one of namePrefix or attribute/],
    [[{ namePrefix: 'a' }], /an owner, a workload or both/],
    [[{ namePrefix: 'a', equals: 'b', owner: 'x' }], /equals: applies only with attribute/],
    [[{ attribute: 'userPassword', owner: 'x' }], /credential/],
    [[{ attribute: 'ou;binary', owner: 'x' }], /attribute or tag name/],
    [[{ namePrefix: 'a', owner: 'x\ny' }], /control characters/],
    [[{ namePrefix: 'a', owner: 'x', colour: 'red' }], /Unrecognized key/],
  ])('refuses %j at load', (rules, message) => {
    expect(withRules(rules)).toThrow(message);
  });

  it('maps by the first matching rule per field; attribute names match case-insensitively; a rule never matches what it does not name', () => {
    const rules = [
      { namePrefix: 'svc_bill', owner: 'team-billing' },
      { namePrefix: 'svc_', owner: 'team-platform', workload: 'shared' },
      { attribute: 'description', equals: 'payroll', workload: 'payroll-app' },
      { attribute: 'employeeType', owner: 'has-type' },
    ];
    expect(ruleAttribution(rules, { name: 'svc_billing' })).toEqual({ owner: 'team-billing', workload: 'shared' });
    expect(ruleAttribution(rules, { name: 'svc_other' })).toEqual({ owner: 'team-platform', workload: 'shared' });
    expect(ruleAttribution(rules, { name: 'alice', attributes: { Description: ['payroll'] } })).toEqual({ workload: 'payroll-app' });
    expect(ruleAttribution(rules, { name: 'bob', attributes: { description: ['billing'], employeetype: ['contractor'] } })).toEqual({ owner: 'has-type' });
    expect(ruleAttribution(rules, { name: 'carol' })).toEqual({});
  });
});

describe('CHANGEGATE_DISCOVERY_INTERVAL', () => {
  const base = { SERVICENOW_URL: 'http://127.0.0.1:8090', SERVICENOW_USERNAME: 'u', SERVICENOW_PASSWORD: 'p', SERVICENOW_WEBHOOK_SECRET: 'x'.repeat(16), CHANGEGATE_ADMIN_TOKEN: 'y'.repeat(16) };

  it('defaults to one hour and reads ISO-8601 durations', () => {
    expect(discoveryIntervalMs(loadConfig(base))).toBe(3_600_000);
    expect(discoveryIntervalMs(loadConfig({ ...base, CHANGEGATE_DISCOVERY_INTERVAL: 'PT15M' }))).toBe(900_000);
  });

  it.each(['1h', 'PT30S', 'P8D', ''])('refuses %j at start, naming the variable', (value) => {
    expect(() => loadConfig({ ...base, CHANGEGATE_DISCOVERY_INTERVAL: value })).toThrow(/CHANGEGATE_DISCOVERY_INTERVAL/);
  });
});

describe('inventory types from a connector grammar', () => {
  it('a Vault KV path is a secret, a PKI name a certificate, the gateway token an API key; anything else keeps the action type', () => {
    const grammar = new VaultGrammar({ protectedAccounts: [] });
    expect(grammar.inventoryType('kv/apps/billing')).toBe('secret');
    expect(grammar.inventoryType('pki/billing.example.test')).toBe('certificate');
    expect(grammar.inventoryType('token/changegate')).toBe('api_key');
    expect(grammar.inventoryType('db/readonly')).toBeUndefined();
  });
});

describe('standing access in the inventory', () => {
  const G = 'SELECT ON `billing`.*';
  const now = new Date('2026-01-01T00:00:00.000Z');
  const step = (fields: Partial<StepChange>): StepChange => ({
    ticketKey: 'servicenow:CHG1', system: 'mysql-local', identity: { type: 'person', name: 'jdoe' }, host: '%', outcome: 'granted', operation: 'grant',
    desired: { exists: true, mustHave: [G] }, observed: { exists: true, grants: [G] }, verifiedAt: now.toISOString(), grants: [G], ...fields,
  });
  const row = () => Object.assign(new InventoryIdentity(), { system: 'mysql-local', name: 'jdoe', host: '%', type: 'person', owner: null, ownerSource: null, workload: null, workloadSource: null, grants: [], status: 'orphan' });

  it('a standing grant is held by its ticket with the owner; a ticket holding it with a ttl is not standing; the owner goes with its ticket\'s hold', () => {
    const r = applyStep(row(), step({ standing: true, owner: 'hiring-manager' }), now);
    expect(r).toMatchObject({ status: 'managed', owner: 'hiring-manager', grants: [{ grant: G, tickets: ['servicenow:CHG1'], standing: [{ ticket: 'servicenow:CHG1', owner: 'hiring-manager' }] }] });
    applyStep(r, step({ ticketKey: 'servicenow:CHG2' }), now);
    expect(r.grants).toEqual([{ grant: G, tickets: ['servicenow:CHG1', 'servicenow:CHG2'], standing: [{ ticket: 'servicenow:CHG1', owner: 'hiring-manager' }] }]);
    applyStep(r, step({ operation: 'take-back', outcome: 'expired', desired: { exists: true, mustNotHave: [] } }), now);
    expect(r.grants).toEqual([{ grant: G, tickets: ['servicenow:CHG2'] }]);
    applyStep(r, step({ ticketKey: 'servicenow:CHG3', standing: true, owner: 'team-b' }), now);
    applyStep(r, step({ ticketKey: 'servicenow:CHG4', operation: 'revoke', outcome: 'revoked', desired: { exists: false }, observed: { exists: false, grants: [] }, grants: undefined }), now);
    expect(r).toMatchObject({ status: 'revoked', grants: [] });
  });
});
