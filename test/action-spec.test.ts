import { createHmac } from 'node:crypto';
import { parseIsoDuration } from '../src/actions/iso-duration';
import { MAX_TIMESTAMP_SKEW_SECONDS, signWebhook, verifyWebhookSignature } from '../src/itsm/servicenow/webhook-signature';
import { MYSQL_PRIVILEGES, MysqlGrammar, canonicalGrantsFromShowGrants } from '../src/connectors/mysql/mysql-grammar';
import { GrammarRegistry } from '../src/connectors/registry';
import { canonicalJson } from '../src/evidence/canonical-json';
import { parseIdentityActions } from '../src/actions/plan-actions';
import type { PlannedAction, StepState } from '../src/change';
import { closureVerdict } from '../src/change/closure';
import { closureRules } from '../workflows/kinds/registry';
import { connectorsFile } from './support/stack';
import { TEST_ENV } from './support/test-env';

describe('parseIsoDuration', () => {
  it.each([
    ['PT8H', 8 * 3_600_000],
    ['P1DT2H', 26 * 3_600_000],
    ['PT0.5S', 500],
    ['PT1,5S', 1_500],
    ['P1W', 7 * 86_400_000],
    ['P1W2D', 9 * 86_400_000],
    ['PT1M', 60_000],
    ['P1M', 30 * 86_400_000],
    ['P1Y', 365 * 86_400_000],
    ['P1.5D', 36 * 3_600_000],
    ['P1DT2H30M15.5S', 93_600_000 + 30 * 60_000 + 15_500],
  ])('reads %s as %d ms', (text, ms) => {
    expect(parseIsoDuration(text)).toBe(ms);
  });

  it.each([
    ['P', 'no unit at all'],
    ['PT', 'a time designator with no unit'],
    ['P1DT', 'a trailing time designator'],
    ['8H', 'no leading P'],
    ['P1.5DT2H', 'a fraction on a unit that is not the last one'],
    ['PT1.5H30M', 'a fraction on a unit that is not the last one'],
    ['-PT1H', 'a negative duration'],
    ['PT-1H', 'a negative unit'],
    ['garbage', 'garbage'],
    ['', 'the empty string'],
    [' PT1H', 'surrounding white space'],
  ])('rejects %j (%s) with null', (text) => {
    expect(parseIsoDuration(text)).toBeNull();
  });
});

describe('identity actions on a ServiceNow ticket (parseIdentityActions with the test connectors file)', () => {
  const grammars = new GrammarRegistry(connectorsFile());
  const leaver = (extra: object = {}) => ({ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: 'svc_app', host: '%' }, ...extra });
  const joiner = (extra: object = {}) => ({
    kind: 'joiner',
    system: 'mysql-local',
    identity: { type: 'person', name: 'alice' },
    grants: ['SELECT ON cgt_billing.*'],
    ttl: 'PT8H',
    ...extra,
  });
  const parse = (doc: unknown) => parseIdentityActions(typeof doc === 'string' ? doc : JSON.stringify(doc), grammars, 'u_identity_actions');
  const issuesOf = (doc: unknown) => {
    const result = parse(doc);
    if (result.ok) throw new Error(`expected issues, got ${JSON.stringify(result.value)}`);
    return result.issues;
  };
  const plannedOf = (doc: unknown): PlannedAction[] => {
    const result = parse(doc);
    if (!result.ok) throw new Error(`expected a plan, got issues ${JSON.stringify(result.issues)}`);
    return result.value;
  };

  it('refuses an unpaired surrogate anywhere in the field, naming where (evidence is RFC 8785, which cannot hold one)', () => {
    const message = 'must not contain an unpaired UTF-16 surrogate (\\ud800-\\udfff alone)';
    expect(issuesOf('[{"kind":"leaver","system":"mysql-local","identity":{"type":"service_account","name":"svc\\ud800x"}}]')).toEqual([
      { path: 'u_identity_actions[0].identity.name', message },
    ]);
    expect(issuesOf('{"version":1,"actions":[],"\\udc00":1}')).toEqual([{ path: 'u_identity_actions.\udc00', message }]);
    // A pair is a character like any other: not refused for this reason.
    expect(JSON.stringify(parse('[{"kind":"leaver","system":"mysql-local","identity":{"type":"service_account","name":"svc\\ud83d\\ude00"}}]'))).not.toMatch(/surrogate/);
  });

  it('an empty or blank field plans nothing', () => {
    expect(plannedOf('')).toEqual([]);
    expect(plannedOf('  \n ')).toEqual([]);
  });

  it('a valid leaver becomes one planned leaver with a 16-hex action id', () => {
    const [action, ...rest] = plannedOf([leaver()]);
    expect(rest).toEqual([]);
    expect(action).toEqual({
      actionId: expect.stringMatching(/^[0-9a-f]{16}$/),
      kind: 'leaver',
      system: 'mysql-local',
      identity: { type: 'service_account', name: 'svc_app', host: '%' },
    });
  });

  it('the action id does not depend on key order, and differs between different actions', () => {
    const reordered = { identity: { host: '%', name: 'svc_app', type: 'service_account' }, system: 'mysql-local', kind: 'leaver' };
    const [a] = plannedOf([leaver()]);
    const [b] = plannedOf([reordered]);
    const [c] = plannedOf([leaver({ identity: { type: 'service_account', name: 'svc_other', host: '%' } })]);
    expect(b?.actionId).toBe(a?.actionId);
    expect(c?.actionId).not.toBe(a?.actionId);
  });

  it('a valid joiner carries its grants in canonical form, sorted and de-duplicated, and its ttl in ms', () => {
    const [action] = plannedOf([joiner({ grants: ['select, insert on cgt_billing.*', 'SELECT ON cgt_billing.*', 'insert on cgt_billing.invoices'] })]);
    expect(action).toEqual({
      actionId: expect.stringMatching(/^[0-9a-f]{16}$/),
      kind: 'joiner',
      system: 'mysql-local',
      identity: { type: 'person', name: 'alice' },
      grants: ['INSERT ON `cgt\\_billing`.*', 'INSERT ON `cgt_billing`.`invoices`', 'SELECT ON `cgt\\_billing`.*'],
      ttlMs: 8 * 3_600_000,
      ttl: 'PT8H',
    });
  });

  it('a joiner with neither a ttl nor an until is refused where no policy allows standing access (the test connectors have none)', () => {
    expect(issuesOf([joiner({ ttl: undefined, owner: 'team-a' })])).toEqual([
      {
        path: 'u_identity_actions[0].grants[0]',
        message: 'SELECT ON `cgt\\_billing`.* (no class) has no cleanup path: no privilege class on mysql-local covers it; give the action a ttl or an until, or use a policy that allows standing access to it for person identities',
      },
    ]);
  });

  it('a joiner until the ticket closes plans no ttl', () => {
    const [action] = plannedOf([joiner({ ttl: undefined, until: 'ticket-closed' })]);
    expect(action).toMatchObject({ kind: 'joiner', until: 'ticket-closed' });
    expect(action?.kind === 'joiner' && action.ttlMs).toBeUndefined();
  });

  it('a ttl of exactly the policy maximum (P30D) is accepted', () => {
    expect(plannedOf([joiner({ ttl: 'P30D' })])[0]).toMatchObject({ ttlMs: 30 * 86_400_000 });
  });

  it('a decommission plans a selection of its workload on every system, and the ticket\'s configuration item stands in for a missing workload', () => {
    expect(plannedOf([{ kind: 'decommission', workload: 'billing-api' }])[0]).toMatchObject({
      kind: 'decommission', system: '*', select: { by: 'workload', value: 'billing-api' },
    });
    const fromTicket = parseIdentityActions(JSON.stringify([{ kind: 'decommission' }]), grammars, 'u_identity_actions', { configurationItem: 'orders-api' });
    expect(fromTicket.ok && fromTicket.value[0]).toMatchObject({ select: { by: 'workload', value: 'orders-api' } });
  });

  it('a leaver by owner plans a selection of what the owner holds, with whom to hand workloads to', () => {
    expect(plannedOf([{ kind: 'leaver', owner: 'jdoe', reassignTo: 'team-billing' }])[0]).toMatchObject({
      kind: 'leaver', system: '*', identity: { type: 'person', name: 'jdoe' }, select: { by: 'owner', value: 'jdoe', reassignTo: 'team-billing' },
    });
    // A leaver of one identity is what it was.
    expect(plannedOf([leaver()])[0]?.select).toBeUndefined();
  });

  it('the versioned envelope {version: 1, actions} plans the same actions as the bare array', () => {
    const bare = plannedOf([leaver(), joiner()]);
    expect(plannedOf({ version: 1, actions: [leaver(), joiner()] })).toEqual(bare);
    expect(bare.map((a) => a.kind)).toEqual(['leaver', 'joiner']);
  });

  describe('every refusal names the field it is about', () => {
    it.each<[string, unknown, { path: string; message: string | RegExp }]>([
      ['text that is not JSON', '[{', { path: 'u_identity_actions', message: /^is not valid JSON/ }],
      ['a JSON scalar', '42', { path: 'u_identity_actions', message: 'Expected object, received number' }],
      ['JSON null', 'null', { path: 'u_identity_actions', message: 'Expected object, received null' }],
      ['an envelope of another version', { version: 2, actions: [] }, { path: 'u_identity_actions.version', message: 'Invalid literal value, expected 1' }],
      ['more than 100 actions', Array.from({ length: 101 }, () => leaver()), { path: 'u_identity_actions', message: /at most 100/ }],
      ['an unknown kind', [leaver({ kind: 'offboard' })], { path: 'u_identity_actions[0].kind', message: 'kind must be one of joiner, leaver, mover, rotate, deploy, decommission (spec v1)' }],
      ['a decommission naming a system', [leaver({ kind: 'decommission' })], { path: 'u_identity_actions[0]', message: "Unrecognized key(s) in object: 'system', 'identity'" }],
      ['a decommission on a ticket without a configuration item', [{ kind: 'decommission' }], { path: 'u_identity_actions[0].workload', message: 'is required: the ticket names no configuration item (cmdb_ci) to decommission' }],
      ['a decommission of an empty workload', [{ kind: 'decommission', workload: '' }], { path: 'u_identity_actions[0].workload', message: 'must not be empty' }],
      ['a leaver naming neither a system nor an owner', [{ kind: 'leaver' }], { path: 'u_identity_actions[0].owner', message: /^is required when no system and identity are named/ }],
      ['a leaver by owner with a workload', [{ kind: 'leaver', owner: 'jdoe', workload: 'billing-api' }], { path: 'u_identity_actions[0].workload', message: /^is not allowed on a leaver by owner/ }],
      ['a leaver of one identity with reassignTo', [leaver({ reassignTo: 'team-billing' })], { path: 'u_identity_actions[0].reassignTo', message: 'applies only to a leaver by owner (no system and identity)' }],
      ['a leaver with a system but no identity', [{ kind: 'leaver', system: 'mysql-local' }], { path: 'u_identity_actions[0].identity', message: 'is required with system' }],
      ['a missing kind', [{ system: 'mysql-local', identity: { type: 'person', name: 'x' } }], { path: 'u_identity_actions[0].kind', message: /^kind must be one of joiner, leaver/ }],
      ['an unknown field on an action', [leaver({ extra: 1 })], { path: 'u_identity_actions[0]', message: "Unrecognized key(s) in object: 'extra'" }],
      ['a missing system', [{ kind: 'leaver', identity: { type: 'person', name: 'x' } }], { path: 'u_identity_actions[0].system', message: 'is required with identity (or leave both out and name an owner)' }],
      ['a missing system on a joiner', [{ kind: 'joiner', identity: { type: 'person', name: 'x' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT1H' }], { path: 'u_identity_actions[0].system', message: 'Required' }],
      ['an unknown identity type', [leaver({ identity: { type: 'robot', name: 'x' } })], { path: 'u_identity_actions[0].identity.type', message: /^Invalid enum value/ }],
      ['an unknown field on the identity', [leaver({ identity: { type: 'person', name: 'x', password: 'p' } })], { path: 'u_identity_actions[0].identity', message: "Unrecognized key(s) in object: 'password'" }],
      ['an empty identity name', [leaver({ identity: { type: 'person', name: '' } })], { path: 'u_identity_actions[0].identity.name', message: 'must not be empty' }],
      ['a joiner without grants', [joiner({ grants: [] })], { path: 'u_identity_actions[0].grants', message: 'a joiner needs at least one grant' }],
      ['a ttl that is not a duration', [joiner({ ttl: 'eight hours' })], { path: 'u_identity_actions[0].ttl', message: "'eight hours' is not an ISO-8601 duration (e.g. PT8H)" }],
      ['a ttl under one second', [joiner({ ttl: 'PT0.5S' })], { path: 'u_identity_actions[0].ttl', message: 'must be at least one second (PT1S)' }],
      ['a ttl over the policy maximum', [joiner({ ttl: 'P31D' })], { path: 'u_identity_actions[0].ttl', message: 'exceeds the policy maximum for mysql-local' }],
      ['an unknown system', [leaver({ system: 'oracle-prod' })], { path: 'u_identity_actions[0].system', message: "unknown system 'oracle-prod' (configured: mysql-local)" }],
      ['a name MySQL cannot take', [leaver({ identity: { type: 'person', name: 'bad name!' } })], { path: 'u_identity_actions[0].identity.name', message: /^must be 1-32 characters/ }],
      ['a 33-character name', [leaver({ identity: { type: 'person', name: 'a'.repeat(33) } })], { path: 'u_identity_actions[0].identity.name', message: /^must be 1-32 characters/ }],
      ['a protected account, in any case', [leaver({ identity: { type: 'person', name: 'ROOT' } })], { path: 'u_identity_actions[0].identity.name', message: "'ROOT' is a protected account and cannot be changed by a ticket" }],
      ["the connector's own account", [leaver({ identity: { type: 'service_account', name: TEST_ENV.connectorUser } })], { path: 'u_identity_actions[0].identity.name', message: /is a protected account/ }],
      ['a malformed host', [leaver({ identity: { type: 'person', name: 'x', host: 'a b' } })], { path: 'u_identity_actions[0].identity.host', message: /^must be '%', a host name/ }],
      ['a disallowed privilege', [joiner({ grants: ['SELECT ON cgt_billing.*', 'SUPER ON cgt_billing.*'] })], { path: 'u_identity_actions[0].grants[1]', message: /^unknown or disallowed privilege 'SUPER'/ }],
      ['a bad action inside the envelope', { version: 1, actions: [leaver({ kind: 'offboard' })] }, { path: 'u_identity_actions.actions[0].kind', message: /^kind must be one of/ }],
      ['an unknown system inside the envelope', { version: 1, actions: [leaver(), leaver({ system: 'x' })] }, { path: 'u_identity_actions.actions[1].system', message: /^unknown system 'x'/ }],
    ])('%s', (_what, doc, expected) => {
      expect(issuesOf(doc)).toEqual([{ path: expected.path, message: typeof expected.message === 'string' ? expected.message : expect.stringMatching(expected.message) }]);
    });

    it('problems in several actions are all reported, each at its own index', () => {
      expect(issuesOf([leaver({ system: 'nope' }), leaver(), joiner({ ttl: 'P1Y', grants: ['SELECT ON *.*'] })])).toEqual([
        { path: 'u_identity_actions[0].system', message: expect.stringMatching(/^unknown system 'nope'/) },
        { path: 'u_identity_actions[2].grants[0]', message: expect.stringMatching(/global grants/) },
        { path: 'u_identity_actions[2].ttl', message: 'exceeds the policy maximum for mysql-local' },
      ]);
    });
  });
});

describe('MySQL grammar: grants', () => {
  const grammar = new MysqlGrammar({ protectedAccounts: ['root'] });
  const problemOf = (text: string) => {
    const parsed = grammar.parseGrant(text);
    if (!('problem' in parsed)) throw new Error(`expected a refusal, got ${JSON.stringify(parsed)}`);
    return parsed.problem;
  };

  it.each(MYSQL_PRIVILEGES.map((p) => [p]))('allows %s on a whole database', (privilege) => {
    expect(grammar.parseGrant(`${privilege} ON billing.*`)).toEqual({ canonical: [`${privilege} ON \`billing\`.*`] });
  });

  it('normalises case and spacing, de-duplicates and sorts, and quotes the object', () => {
    expect(grammar.parseGrant('  select ,  Insert,SELECT , create   view on Billing_1.invoices$ ')).toEqual({
      canonical: ['CREATE VIEW ON `Billing_1`.`invoices$`', 'INSERT ON `Billing_1`.`invoices$`', 'SELECT ON `Billing_1`.`invoices$`'],
    });
  });

  it.each(['ALL PRIVILEGES', 'ALL', 'GRANT OPTION', 'SUPER', 'FILE', 'PROCESS', 'USAGE', 'CREATE USER', 'RELOAD', 'SHUTDOWN'])('refuses %s, which is not on the allow-list', (privilege) => {
    expect(problemOf(`${privilege} ON billing.*`)).toMatch(new RegExp(`^unknown or disallowed privilege '${privilege}'`));
  });

  it('refuses global grants (*.*)', () => {
    expect(problemOf('SELECT ON *.*')).toBe('global grants (*.*) are not allowed by policy; name a database');
  });

  it.each([
    ['`billing.*', /^database name '`billing'/],
    ['`bill_ing`.*', /^database name '`bill_ing`'/],
    ["'billing'.*", /^database name ''billing''/],
    ['"billing".*', /^database name '"billing"'/],
    ['billing.`invoices`', /^table name '`invoices`'/],
    ['`billing`.invoices', /^database name '`billing`'/],
    ['billing.invoices;DROP', /^table name 'invoices;DROP'/],
    ['bill;ing.*', /^database name 'bill;ing'/],
    ['bill-ing.*', /^database name 'bill-ing'/],
    [`${'d'.repeat(65)}.*`, /^database name 'd{65}' must be 1-64/],
  ])('refuses the object name in %s', (object, problem) => {
    expect(problemOf(`SELECT ON ${object}`)).toMatch(problem);
  });

  it('takes a grant back in its canonical form, and only exactly that form of quoting', () => {
    for (const text of ['SELECT ON billing_eu.*', 'INSERT ON billing.invoices']) {
      const first = grammar.parseGrant(text);
      if ('problem' in first) throw new Error(first.problem);
      expect(first.canonical.map((c) => grammar.parseGrant(c))).toEqual(first.canonical.map((c) => ({ canonical: [c] })));
    }
    expect(grammar.parseGrant('SELECT ON `billing\\_eu`.*')).toEqual({ canonical: ['SELECT ON `billing\\_eu`.*'] });
  });

  it.each(['SELECT ON billing.*; DROP USER root', 'SELECT ON billing.* TO x', 'SELECT', 'ON billing.*', 'SELECT ON'])('refuses %j, which is not one grant', (text) => {
    expect(problemOf(text)).toBe("must look like 'SELECT, INSERT ON db.*' or 'SELECT ON db.table'");
  });

  it.each(['billing', 'billing.invoices.id', 'billing.'])("refuses the object %j, which is not 'db.*' or 'db.table'", (object) => {
    expect(problemOf(`SELECT ON ${object}`)).toMatch(/^(the object must be 'db\.\*' or 'db\.table'|table name '')/);
  });

  it.each(['LOCK TABLES', 'CREATE TEMPORARY TABLES', 'EVENT', 'CREATE ROUTINE', 'ALTER ROUTINE', 'EXECUTE'])('refuses %s on a single table: it is a database-level privilege', (privilege) => {
    expect(problemOf(`SELECT, ${privilege} ON billing.invoices`)).toBe(`${privilege} can only be granted on a whole database (db.*)`);
    expect(grammar.parseGrant(`${privilege} ON billing.*`)).toEqual({ canonical: [`${privilege} ON \`billing\`.*`] });
  });
});

describe('MySQL grammar: SHOW GRANTS lines in canonical form', () => {
  // Lines as MariaDB 10.11 prints them.
  const usage = "GRANT USAGE ON *.* TO `svc`@`%` IDENTIFIED BY PASSWORD '*342861D1586CD4F4613EFB9B73B9F8A753535975'";

  it('drops USAGE and, with it, the password hash', () => {
    const grants = canonicalGrantsFromShowGrants([usage]);
    expect(grants).toEqual([]);
    expect(JSON.stringify(canonicalGrantsFromShowGrants([usage, 'GRANT SELECT ON `billing`.* TO `svc`@`%`']))).not.toMatch(/342861D1|PASSWORD|IDENTIFIED/);
  });

  it('splits privilege lists into one canonical grant each, sorted, matching what parseGrant produces', () => {
    const shown = canonicalGrantsFromShowGrants([usage, 'GRANT SELECT, INSERT ON `billing`.* TO `svc`@`%`', 'GRANT INSERT ON `billing`.`invoices` TO `svc`@`%`']);
    expect(shown).toEqual(['INSERT ON `billing`.*', 'INSERT ON `billing`.`invoices`', 'SELECT ON `billing`.*']);
    const requested = ['SELECT, INSERT ON billing.*', 'INSERT ON billing.invoices'].flatMap((g) => {
      const parsed = new MysqlGrammar({ protectedAccounts: [] }).parseGrant(g);
      return 'canonical' in parsed ? parsed.canonical : [];
    });
    expect(shown).toEqual([...requested].sort());
  });

  it('keeps column lists whole, splitting only on commas outside parentheses', () => {
    expect(canonicalGrantsFromShowGrants(['GRANT SELECT (`id`, `amount`), UPDATE (`amount`) ON `billing`.`invoices` TO `svc`@`%`'])).toEqual([
      'SELECT (`id`, `amount`) ON `billing`.`invoices`',
      'UPDATE (`amount`) ON `billing`.`invoices`',
    ]);
  });

  it('turns WITH GRANT OPTION into its own GRANT OPTION grant on the same object', () => {
    expect(canonicalGrantsFromShowGrants(['GRANT SELECT, INSERT ON `billing`.* TO `svc`@`%` WITH GRANT OPTION'])).toEqual([
      'GRANT OPTION ON `billing`.*',
      'INSERT ON `billing`.*',
      'SELECT ON `billing`.*',
    ]);
  });

  it('keeps ALL PRIVILEGES as one grant, reports granted roles as ROLE grants, and skips other lines', () => {
    expect(canonicalGrantsFromShowGrants(['GRANT ALL PRIVILEGES ON `reporting`.* TO `svc`@`%`', 'GRANT `some_role` TO `svc`@`%`', ''])).toEqual([
      'ALL PRIVILEGES ON `reporting`.*',
      'ROLE `some_role`',
    ]);
  });
});

describe('webhook signature', () => {
  const secret = 'unit-test-secret';
  const ts = '1763900000';
  const body = Buffer.from('{"sys_id":"abc","number":"CHG0030001"}');
  const check = (overrides: Partial<Parameters<typeof verifyWebhookSignature>[0]>) =>
    verifyWebhookSignature({ secret, rawBody: body, signature: signWebhook(secret, ts, body), timestamp: ts, nowSeconds: Number(ts), ...overrides });

  it('is Base64 HMAC-SHA256 over `${timestamp}.${body}` keyed with the secret, computed independently with node:crypto', () => {
    const independent = createHmac('sha256', secret).update(`${ts}.${body.toString('utf8')}`).digest('base64');
    expect(signWebhook(secret, ts, body)).toBe(independent);
    expect(Buffer.from(independent, 'base64')).toHaveLength(32);
  });

  it('accepts a correct signature, also with surrounding white space', () => {
    expect(check({})).toEqual({ ok: true });
    expect(check({ signature: ` ${signWebhook(secret, ts, body)}\n` })).toEqual({ ok: true });
  });

  it.each([299, 300, -299, -300])('accepts a timestamp %d s away from the receiver clock', (skew) => {
    expect(MAX_TIMESTAMP_SKEW_SECONDS).toBe(300);
    expect(check({ nowSeconds: Number(ts) + skew })).toEqual({ ok: true });
  });

  it.each([301, -301, 86_400])('refuses a timestamp %d s away as stale', (skew) => {
    expect(check({ nowSeconds: Number(ts) + skew })).toEqual({ ok: false, reason: 'stale-timestamp' });
  });

  it('refuses a signature made with another secret', () => {
    expect(check({ signature: signWebhook('another-secret', ts, body) })).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('refuses a signature of the wrong length, longer or shorter', () => {
    const good = Buffer.from(signWebhook(secret, ts, body), 'base64');
    expect(check({ signature: good.subarray(0, 16).toString('base64') })).toEqual({ ok: false, reason: 'bad-signature' });
    expect(check({ signature: Buffer.concat([good, Buffer.from([0])]).toString('base64') })).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('refuses a changed body or a changed timestamp under the original signature', () => {
    expect(check({ rawBody: Buffer.from(`${body.toString()} `) })).toEqual({ ok: false, reason: 'bad-signature' });
    const later = String(Number(ts) + 1);
    expect(check({ timestamp: later, nowSeconds: Number(later) })).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('names what is missing or malformed', () => {
    expect(check({ signature: undefined })).toEqual({ ok: false, reason: 'missing-signature' });
    expect(check({ signature: '' })).toEqual({ ok: false, reason: 'missing-signature' });
    expect(check({ timestamp: undefined })).toEqual({ ok: false, reason: 'missing-timestamp' });
    expect(check({ timestamp: '1763900000.5' })).toEqual({ ok: false, reason: 'malformed-timestamp' });
    expect(check({ timestamp: '-1' })).toEqual({ ok: false, reason: 'malformed-timestamp' });
  });
});

describe('closureVerdict', () => {
  const leaverAction: PlannedAction = { actionId: 'a1', kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: 'svc', host: '%' } };
  const joinerAction: PlannedAction = { actionId: 'j1', kind: 'joiner', system: 'mysql-local', identity: { type: 'person', name: 'alice' }, grants: ['SELECT ON `b`.*'], ttlMs: 1000, ttl: 'PT1S' };
  const step = (action: PlannedAction, fields: Partial<StepState>): StepState => ({ stepId: `${action.kind}:${action.actionId}`, action, status: 'pending', eventReceivedAt: '2026-01-01T00:00:00.000Z', ...fields });
  const verdictOf = (...steps: StepState[]) => closureVerdict({ steps }, closureRules);

  it('allows closure of a ticket with no steps', () => {
    expect(verdictOf()).toEqual({ allowed: true, reasons: [] });
  });

  it.each([
    ['pending', 'leaver of svc@% on mysql-local is not verified yet'],
    ['running', 'leaver of svc@% on mysql-local is not verified yet'],
    ['waiting-authorization', 'leaver of svc@% on mysql-local waits for the change to be approved and in Implement'],
  ] as const)('blocks a %s step and says so', (status, reason) => {
    expect(verdictOf(step(leaverAction, { status }))).toEqual({ allowed: false, reasons: [reason] });
  });

  it('blocks a failed step and gives its detail, or says there is none', () => {
    expect(verdictOf(step(leaverAction, { status: 'failed', detail: 'target refused' }))).toEqual({ allowed: false, reasons: ['leaver of svc@% on mysql-local failed: target refused'] });
    expect(verdictOf(step(leaverAction, { status: 'failed' })).reasons).toEqual(['leaver of svc@% on mysql-local failed: no detail']);
  });

  it.each(['cancelled', 'withdrawn'] as const)('does not block on a %s step', (status) => {
    expect(verdictOf(step(joinerAction, { status }))).toEqual({ allowed: true, reasons: [] });
  });

  it('allows a verified leaver', () => {
    expect(verdictOf(step(leaverAction, { status: 'verified' }))).toEqual({ allowed: true, reasons: [] });
  });

  it('blocks a verified joiner with no cleanup path, naming it without a host when none was given', () => {
    const reason = 'joiner of alice on mysql-local has no cleanup path (no ttl)';
    expect(verdictOf(step(joinerAction, { status: 'verified', expiry: { status: 'none' } })).reasons).toEqual([reason]);
    expect(verdictOf(step(joinerAction, { status: 'verified' })).reasons).toEqual([reason]);
  });

  it.each(['scheduled', 'verified'] as const)('allows a verified joiner whose expiry is %s', (status) => {
    expect(verdictOf(step(joinerAction, { status: 'verified', expiry: { status } }))).toEqual({ allowed: true, reasons: [] });
  });

  it('allows a verified joiner whose cleanup is standing access, owned', () => {
    expect(verdictOf(step(joinerAction, { status: 'verified', expiry: { status: 'standing', owner: 'team-a' } }))).toEqual({ allowed: true, reasons: [] });
  });

  it('blocks a verified joiner until the ticket closes while its take-back is due, unless its run predates that rule', () => {
    const scoped = { status: 'scheduled', until: 'ticket-closed' } as const;
    expect(verdictOf(step(joinerAction, { status: 'verified', expiry: { ...scoped, endsAtReview: true } })).reasons).toEqual([
      'joiner of alice on mysql-local lasts until the change leaves Implement: it is taken back when the change moves to Review, and closure waits until that is verified',
    ]);
    expect(verdictOf(step(joinerAction, { status: 'verified', expiry: { ...scoped, endsAtReview: true, status: 'verified' } }))).toEqual({ allowed: true, reasons: [] });
    expect(verdictOf(step(joinerAction, { status: 'verified', expiry: scoped }))).toEqual({ allowed: true, reasons: [] });
  });

  it('blocks a verified joiner whose expiry is running or failed', () => {
    expect(verdictOf(step(joinerAction, { status: 'verified', expiry: { status: 'running' } })).reasons).toEqual(['expiry of joiner of alice on mysql-local is not verified yet']);
    expect(verdictOf(step(joinerAction, { status: 'verified', expiry: { status: 'failed', detail: 'grant still present' } })).reasons).toEqual([
      'expiry of joiner of alice on mysql-local failed: grant still present',
    ]);
    expect(verdictOf(step(joinerAction, { status: 'verified', expiry: { status: 'failed' } })).reasons).toEqual(['expiry of joiner of alice on mysql-local failed: no detail']);
  });

  it('blocks on a failed ticket write-back, before any step reason', () => {
    expect(closureVerdict({ steps: [step(leaverAction, { status: 'pending' })], writeBackErrors: ['ticket is gone'] }, closureRules)).toEqual({
      allowed: false,
      reasons: ['evidence could not be written to the ticket: ticket is gone', 'leaver of svc@% on mysql-local is not verified yet'],
    });
  });

  it('gives one reason per blocking step, in step order', () => {
    expect(verdictOf(step(leaverAction, { status: 'running' }), step(joinerAction, { status: 'waiting-authorization' })).reasons).toEqual([
      'leaver of svc@% on mysql-local is not verified yet',
      'joiner of alice on mysql-local waits for the change to be approved and in Implement',
    ]);
  });
});

describe('canonicalJson', () => {
  it('yields the same text whatever the key order, at every depth', () => {
    const a = { b: 1, a: { d: [{ y: 2, x: 1 }], c: 'z' } };
    const b = { a: { c: 'z', d: [{ x: 1, y: 2 }] }, b: 1 };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson(a)).toBe('{"a":{"c":"z","d":[{"x":1,"y":2}]},"b":1}');
  });

  it('keeps array order, drops undefined members and writes dates as ISO text', () => {
    expect(canonicalJson([2, 1])).not.toBe(canonicalJson([1, 2]));
    expect(canonicalJson({ a: undefined, b: null })).toBe('{"b":null}');
    expect(canonicalJson({ at: new Date('2026-01-02T03:04:05.000Z') })).toBe('{"at":"2026-01-02T03:04:05.000Z"}');
  });
});

describe('ttl ceiling independent of connector policy', () => {
  it('refuses a ttl beyond 100 years even where no policy caps it, so no timer can overflow a date', () => {
    const { identityActionSchema } = jest.requireActual<typeof import('../src/actions/identity-action')>('../src/actions/identity-action');
    const base = { kind: 'joiner', system: 'x', identity: { type: 'person', name: 'a' }, grants: ['SELECT ON d.*'] };
    const huge = identityActionSchema.safeParse({ ...base, ttl: 'P300000Y' });
    expect(huge.success).toBe(false);
    expect(huge.error?.issues[0]).toMatchObject({ path: ['ttl'], message: 'must be at most 100 years (P100Y)' });
    expect(identityActionSchema.safeParse({ ...base, ttl: 'P100Y' }).success).toBe(true);
  });
});
