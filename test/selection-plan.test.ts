import { planIdentity } from '../activities/selection-activities';
import { GrammarRegistry } from '../src/connectors/registry';
import type { InventoryItem } from '../src/inventory/inventory-store';
import { connectorsFile } from './support/stack';

/**
 * What a selecting step does with each identity the inventory lists, decided before any step runs: revoke it, hand
 * it over, or block with the reason a person can act on.
 */
describe('planning one selected identity (decommission, leaver by owner)', () => {
  const grammars = new GrammarRegistry(connectorsFile());
  const grammarOf = (system: string) => grammars.get(system)?.grammar;
  const item = (over: Partial<InventoryItem>): InventoryItem => ({
    id: '1', system: 'mysql-local', name: 'svc_orders', host: '%', type: 'service_account', owner: 'jdoe', ownerSource: 'operator', workload: null,
    workloadSource: null, createdByTicket: null, grants: [], status: 'orphan', lastVerified: { state: null, at: null }, lastEvent: '', lastTicket: null,
    changedAt: '', discoveredAt: null, firstSeenAt: '', ...over,
  });
  const byOwner = { actionId: 'a1', select: { by: 'owner' as const, value: 'jdoe' } };
  const byWorkload = { actionId: 'a1', select: { by: 'workload' as const, value: 'billing-api' } };

  it('revokes a person and a service account that serves nothing, each under its own step id', () => {
    const person = planIdentity(grammarOf, byOwner, item({ name: 'jdoe', type: 'person' }));
    const account = planIdentity(grammarOf, byOwner, item({}));
    expect(person).toMatchObject({ kind: 'leaver', system: 'mysql-local', identity: { type: 'person', name: 'jdoe', host: '%' } });
    expect(person.blocked).toBeUndefined();
    expect(account).toMatchObject({ kind: 'leaver', identity: { type: 'service_account', name: 'svc_orders' } });
    expect(person.actionId).toMatch(/^[0-9a-f]{16}$/);
    expect(person.actionId).not.toBe(account.actionId);
    // The same selection plans the same ids: a retried plan never doubles a step.
    expect(planIdentity(grammarOf, byOwner, item({})).actionId).toBe(account.actionId);
  });

  it("a leaver by owner hands over a service account that still serves a workload with reassignTo, and blocks without it", () => {
    const serving = item({ workload: 'billing-api' });
    expect(planIdentity(grammarOf, { ...byOwner, select: { ...byOwner.select, reassignTo: 'team-billing' } }, serving)).toMatchObject({
      kind: 'reassign', reassign: { from: 'jdoe', to: 'team-billing' },
    });
    expect(planIdentity(grammarOf, byOwner, serving).blocked).toBe('it still serves billing-api: name reassignTo on the leaver to hand it over, or decommission billing-api first');
    // A decommission of that workload revokes it.
    expect(planIdentity(grammarOf, byWorkload, serving).blocked).toBeUndefined();
  });

  it('blocks an identity the policy protects, on a system this gateway does not configure, or with a name the target refuses', () => {
    expect(planIdentity(grammarOf, byWorkload, item({ status: 'protected' })).blocked).toBe('the policy protects it on mysql-local: the gateway never revokes it; revoke it by hand or unlink it from billing-api');
    expect(planIdentity(grammarOf, byOwner, item({ status: 'protected' })).blocked).toMatch(/^the policy protects it on mysql-local: name reassignTo on the leaver to hand it over$/);
    expect(planIdentity(grammarOf, byWorkload, item({ system: 'oracle-prod' })).blocked).toBe('oracle-prod is not configured on this gateway: configure its connector, or revoke it there and run discovery');
    expect(planIdentity(grammarOf, byWorkload, item({ name: 'x'.repeat(40) })).blocked).toMatch(/^the inventory's name is not one mysql-local accepts \(identity\.name: must be 1-32 characters/);
  });
});
