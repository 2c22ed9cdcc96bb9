/**
 * Selecting steps (a decommission, a leaver by owner) read their identities from the inventory: the plan is
 * recorded in the ticket's evidence chain before any of its steps runs, and a leaver by owner hands the non-human
 * identities that still serve a workload to another owner, recorded as evidence too (nothing on the target changes).
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import type { IdentityRef } from '../src/actions/identity-action';
import { EVERY_SYSTEM, type SelectionPlanSummary, type Selection } from '../src/change';
import { FailureType } from '../src/connectors/connector-errors';
import type { ConnectorGrammar } from '../src/connectors/connector';
import type { ConnectorRegistry } from '../src/connectors/registry';
import { canonicalJson } from '../src/evidence/canonical-json';
import type { EvidenceStore } from '../src/evidence/evidence-store';
import { identityOfRow, type InventoryItem, type InventoryStore } from '../src/inventory/inventory-store';
import type { CertificationRequest } from '../src/certification/certification';
import { refusalsAreFinal } from './connector-activities';

/** The most identities one selecting action plans: each becomes a step of the ticket's workflow. */
export const MAX_SELECTED = 200;

export interface SelectionActivityDeps {
  registry: ConnectorRegistry;
  evidence: EvidenceStore;
  inventory?: InventoryStore;
  actor: string;
  /** Told of each verified hand-over (certification's `reassign` trigger). */
  onReassigned?: (request: CertificationRequest) => Promise<void>;
}

export interface PlanSelectionInput {
  ticketKey: string;
  stepId: string;
  actionId: string;
  actionKind: string;
  select: Selection;
  /** `planned` when the ticket arrives; `planned-at-authorization` for a decommission's second look. */
  outcome: 'planned' | 'planned-at-authorization';
  eventReceivedAt: string;
}

/** One identity of the plan, as the step the workflow runs for it. */
export interface PlannedIdentity {
  actionId: string;
  kind: 'leaver' | 'reassign';
  system: string;
  identity: IdentityRef;
  /** Why it cannot run as planned (the step is `blocked` with this reason). */
  blocked?: string;
  /** A hand-over: the inventory's owner changes, the target does not. */
  reassign?: { from: string; to: string };
}

export interface SelectionPlan {
  identities: PlannedIdentity[];
  summary: SelectionPlanSummary;
}

export interface ReassignInput {
  ticketKey: string;
  stepId: string;
  system: string;
  identity: IdentityRef;
  from: string;
  to: string;
  eventReceivedAt: string;
}

export function createSelectionActivities({ registry, evidence, inventory, actor, onReassigned }: SelectionActivityDeps) {
  return {
    /**
     * Reads what the action selects from the inventory and records the plan (every identity, what happens to it and
     * why) as the step's evidence. Idempotent: a retry returns the plan already recorded.
     */
    async planSelection(input: PlanSelectionInput): Promise<SelectionPlan> {
      if (!inventory) throw ApplicationFailure.create({ message: 'this worker has no inventory to select from', type: FailureType.TargetRefused, nonRetryable: true });
      const startedAt = new Date().toISOString();
      const { select } = input;
      const items = await inventory.selected(select.by === 'workload' ? { workload: select.value } : { owner: select.value }, MAX_SELECTED);
      if (items.length > MAX_SELECTED) {
        throw ApplicationFailure.create({
          message: `the inventory lists more than ${MAX_SELECTED} identities for ${select.by} ${select.value}: the gateway plans at most ${MAX_SELECTED} steps per action`,
          type: FailureType.TargetRefused,
          nonRetryable: true,
        });
      }
      const grammarOf = (system: string) => (registry.names().includes(system) ? registry.get(system).grammar : undefined);
      const planned = items.map((item) => planIdentity(grammarOf, input, item));
      const listed = planned.map(listing);
      const verifiedAt = new Date().toISOString();
      const row = await refusalsAreFinal(() => evidence.append({
        ticketKey: input.ticketKey,
        stepId: input.stepId,
        outcome: input.outcome,
        actionKind: input.actionKind,
        system: EVERY_SYSTEM,
        identity: { selects: select.by, name: select.value },
        desiredState: { ...select },
        observedState: { size: planned.length, identities: listed },
        // What the inventory listed: the plan every one of its steps follows.
        verified: true,
        verification: { source: 'inventory' },
        actor,
        eventReceivedAt: input.eventReceivedAt,
        startedAt,
        verifiedAt,
      }));
      // A retried attempt gets the row its first attempt wrote: it follows that plan (what the inventory gained since
      // waits for the next look), never one the evidence does not show.
      const recorded = new Set(((row.observedState as { identities?: typeof listed }).identities ?? []).map((l) => canonicalJson(l)));
      const identities = planned.filter((i) => recorded.has(canonicalJson(listing(i))));
      const count = (what: (i: PlannedIdentity) => boolean) => identities.filter(what).length;
      return {
        identities,
        summary: {
          size: identities.length,
          revoke: count((i) => !i.blocked && !i.reassign),
          reassign: count((i) => !i.blocked && !!i.reassign),
          blocked: count((i) => !!i.blocked),
          systems: [...new Set(identities.map((i) => i.system))].sort(),
          plannedAt: row.verifiedAt ?? verifiedAt,
          evidenceHash: row.hash,
        },
      };
    },

    /** Hands an identity to its new owner in the inventory, with the evidence row that says so. */
    async reassignOwner(input: ReassignInput): Promise<{ verifiedAt: string; evidenceHash: string }> {
      if (!inventory) throw ApplicationFailure.create({ message: 'this worker has no inventory to reassign in', type: FailureType.TargetRefused, nonRetryable: true });
      const startedAt = new Date().toISOString();
      const host = input.identity.host ?? registry.get(input.system).grammar.defaultHost ?? '';
      const conflict = (owner: string | null) =>
        ApplicationFailure.create({
          message: `${input.system}: the inventory's owner of '${input.identity.name}' is ${owner === null ? 'no one' : `'${owner}'`} now, not '${input.from}': it was changed since the plan`,
          type: FailureType.TargetRefused,
          nonRetryable: true,
        });
      const row = await refusalsAreFinal(() => evidence.append({
        ticketKey: input.ticketKey,
        stepId: input.stepId,
        outcome: 'reassigned',
        actionKind: 'leaver',
        system: input.system,
        identity: { ...input.identity },
        desiredState: { owner: input.to },
        observedState: { owner: input.to, previousOwner: input.from, target: 'unchanged: it still serves its workload' },
        verified: true,
        verification: { inventoryOnly: true },
        actor,
        eventReceivedAt: input.eventReceivedAt,
        startedAt,
        verifiedAt: new Date().toISOString(),
      }, inventory.reassignProjection({ system: input.system, name: input.identity.name, host }, input.from, input.to, input.ticketKey, conflict)));
      // The hand-over is done and evidenced: a certification trigger that fails is recorded beside it, never thrown into it.
      await onReassigned?.({
        trigger: 'reassign', reference: `${input.ticketKey}#${input.stepId}`, system: input.system, identity: input.identity, at: row.verifiedAt ?? startedAt,
        detail: `handed over from ${input.from} to ${input.to} by ${input.ticketKey}`,
      }).catch((err: unknown) => refusalsAreFinal(() => evidence.append({
        ticketKey: input.ticketKey,
        stepId: input.stepId,
        outcome: 'certification-not-opened',
        actionKind: 'leaver',
        system: input.system,
        identity: { ...input.identity },
        desiredState: { certification: 'reassign' },
        observedState: { error: err instanceof Error ? err.message.slice(0, 500) : 'unknown error' },
        verified: false,
        verification: {},
        actor,
        eventReceivedAt: input.eventReceivedAt,
        startedAt,
        verifiedAt: null,
      })));
      return { verifiedAt: row.verifiedAt ?? startedAt, evidenceHash: row.hash };
    },
  };
}

/** One identity as the plan's evidence row lists it. */
function listing(i: PlannedIdentity) {
  return {
    system: i.system, name: i.identity.name, ...(i.identity.host ? { host: i.identity.host } : {}), type: i.identity.type,
    plan: i.blocked ? 'blocked' : i.reassign ? `reassign to ${i.reassign.to}` : 'revoke', ...(i.blocked ? { reason: i.blocked } : {}),
  };
}

/** What happens to one selected identity, and why when it cannot. */
export function planIdentity(
  grammarOf: (system: string) => Pick<ConnectorGrammar, 'validateIdentity'> | undefined,
  input: Pick<PlanSelectionInput, 'actionId' | 'select'>,
  item: InventoryItem,
): PlannedIdentity {
  const identity = identityOfRow(item);
  const actionId = createHash('sha256').update(`${input.actionId}\u0000${item.system}\u0000${item.name}\u0000${item.host}`).digest('hex').slice(0, 16);
  const base = { actionId, system: item.system, identity };
  const blocked = (reason: string): PlannedIdentity => ({ ...base, kind: 'leaver', blocked: reason });
  const grammar = grammarOf(item.system);
  if (!grammar) return blocked(`${item.system} is not configured on this gateway: configure its connector, or revoke it there and run discovery`);
  const problems = grammar.validateIdentity(identity);
  if (problems.length > 0) return blocked(`the inventory's name is not one ${item.system} accepts (${problems.map((p) => `${p.path}: ${p.message}`).join('; ')})`);
  const { select } = input;
  const handOver = select.by === 'owner' && (item.status === 'protected' || (item.type !== 'person' && item.workload !== null));
  if (handOver) {
    const why = item.status === 'protected' ? `the policy protects it on ${item.system}` : `it still serves ${item.workload}`;
    if (select.reassignTo) return { ...base, kind: 'reassign', reassign: { from: select.value, to: select.reassignTo } };
    return blocked(`${why}: name reassignTo on the leaver to hand it over${item.status === 'protected' ? '' : `, or decommission ${item.workload} first`}`);
  }
  if (item.status === 'protected') return blocked(`the policy protects it on ${item.system}: the gateway never revokes it; revoke it by hand or unlink it from ${select.value}`);
  return { ...base, kind: 'leaver' };
}

export type SelectionActivities = ReturnType<typeof createSelectionActivities>;
