/**
 * Certification items: opened when something changed about an identity (the triggers start one workflow per item,
 * src/temporal/temporal-client.ts), with the identity's grants read back from the target at that moment and the
 * reviewer the policy's rule names; decided grant by grant (or by the policy at the due date), every decision evidence
 * before it counts; revocations run as a standard change in the configured ticket system, like drift's remediation.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { IdentityRef } from '../src/actions/identity-action';
import type { Actor } from '../src/auth/principal';
import {
  type CertificationItem, type CertificationRequest, type CertificationStatus, type GrantDecision, type Reviewer, certificationChain, revocationAction,
} from '../src/certification/certification';
import { AlreadyDecided, type CertificationStore } from '../src/certification/certification-store';
import { parseIsoDuration } from '../src/actions/iso-duration';
import { FailureType } from '../src/connectors/connector-errors';
import type { ConnectorRegistry } from '../src/connectors/registry';
import type { DriftStore } from '../src/drift/drift-store';
import type { EvidenceStore } from '../src/evidence/evidence-store';
import { EvidenceRefusal } from '../src/evidence/redaction';
import { type NotifySettings, sendNotification } from '../src/exceptions/notify';
import { identityOfRow, type InventoryStore } from '../src/inventory/inventory-store';
import { type TicketWriteBack, WriteBackError } from '../src/itsm/source';
import type { Policy } from '../src/policy/policy';
import { isManaged } from '../src/kinds/mover/move-plan';
import { refusalsAreFinal } from './connector-activities';

/** Starts an item's workflow once per item id (a second start of the same item finds the first). */
export type StartCertification = (request: CertificationRequest) => Promise<{ id: string; started: boolean }>;

export interface CertificationActivityDeps {
  registry: ConnectorRegistry;
  evidence: EvidenceStore;
  inventory: InventoryStore;
  certifications: CertificationStore;
  drift: DriftStore;
  policy?: Policy;
  writeBackFor: (source: string) => TicketWriteBack;
  /** The API's Temporal client, as the worker gets it; without it no trigger opens an item. */
  startCertification?: StartCertification;
  /** The owner's manager, as a directory user, from the named LDAP connector (null: none recorded). */
  managerOf?: (directory: string, owner: string) => Promise<string | null>;
  /** Where an escalation is announced, signed, like an emergency exception's (CHANGEGATE_NOTIFY_URL). */
  notify?: NotifySettings;
  actor: string;
}

/** Attempts of an escalation's notification before the item goes on without it (its evidence row says so). */
const NOTIFY_ATTEMPTS = 5;

export interface StepCertificationInput {
  trigger: 'mover' | 'rotation';
  ticketKey: string;
  stepId: string;
  system: string;
  identity: IdentityRef;
  at: string;
}

export interface RecordCertificationDecisionInput {
  id: string;
  status: CertificationStatus;
  decisions: GrantDecision[];
  justification: string;
  /** The person (or token) who decided; absent when the policy decided at the due date. */
  principal?: Actor;
  requestedAt: string;
}

const refused = (message: string, cause?: unknown) => ApplicationFailure.create({ message, type: FailureType.TargetRefused, nonRetryable: true, ...(cause ? { cause: cause as Error } : {}) });

export function createCertificationActivities(deps: CertificationActivityDeps) {
  const { registry, evidence, inventory, certifications, drift, policy, writeBackFor, actor } = deps;

  /** Starts an item when the policy has certification and the trigger is on; false otherwise. */
  async function start(request: CertificationRequest, on: boolean): Promise<{ id: string; started: boolean } | null> {
    if (!on || !deps.startCertification) return null;
    return deps.startCertification(request);
  }

  async function reviewerOf(owner: string | null): Promise<Reviewer> {
    const rule = policy?.certification?.reviewer;
    if (!rule) throw refused('the policy has no certification section: no item can be opened');
    if (rule.role) return { kind: 'role', role: rule.role };
    if (rule.group) return { kind: 'group', group: rule.group };
    const directory = rule.manager?.directory as string;
    const manager = owner !== null && deps.managerOf ? await deps.managerOf(directory, owner) : null;
    return manager ? { kind: 'manager', user: manager, directory } : { kind: 'role', role: rule.fallbackRole };
  }

  /** A drift item, once its row exists, is named on its finding (evidence in the finding's chain, with its row). */
  async function nameOnFinding(item: CertificationItem, request: CertificationRequest): Promise<void> {
    if (item.trigger !== 'drift') return;
    const key = certificationChain(item.id);
    await refusalsAreFinal(() => evidence.append({
      ticketKey: `drift:${item.reference}`,
      stepId: 'certification',
      outcome: 'certification-opened',
      actionKind: 'drift-certification',
      system: item.system,
      identity: { ...request.identity },
      desiredState: {},
      observedState: { finding: { id: item.reference }, certification: key },
      verified: false,
      verification: {},
      actor,
      eventReceivedAt: request.at,
      startedAt: new Date().toISOString(),
      verifiedAt: null,
    }, drift.changeProjection([item.reference], key)));
  }

  return {
    /**
     * Opens the item an event asks for: its grants read back from the target now, its reviewer by the policy's rule,
     * its due date. The opening is the first row of the item's evidence chain, with the item's row in the same
     * transaction; a retry (or the same event again) gets the item already opened.
     */
    async openCertification({ id, request }: { id: string; request: CertificationRequest }): Promise<CertificationItem> {
      const existing = await certifications.get(id);
      if (existing) {
        await nameOnFinding(existing, request);
        return existing;
      }
      const section = policy?.certification;
      if (!section) throw refused('the policy has no certification section: no item can be opened');
      if (!registry.names().includes(request.system)) throw refused(`${request.system} is not configured on this worker`);
      const startedAt = new Date().toISOString();
      const connector = registry.get(request.system);
      const host = request.identity.host ?? connector.grammar.defaultHost ?? '';
      const row = await inventory.find(request.system, request.identity.name, host);
      const identity = row ? identityOfRow(row) : request.identity;
      const observed = await refusalsAreFinal(() => connector.inspect(identity));
      const grants = [...new Set(observed.grants)].sort();
      const owner = row?.owner ?? null;
      const dueMs = parseIsoDuration(section.due) as number;
      const item: CertificationItem = {
        id, system: request.system, name: identity.name, host, type: row?.type ?? identity.type, owner, workload: row?.workload ?? null, grants,
        trigger: request.trigger, reference: request.reference, detail: request.detail ?? '', reviewer: await reviewerOf(owner),
        dueAt: new Date(Date.parse(startedAt) + dueMs).toISOString(), onTimeout: section.onTimeout, status: 'open',
        decisions: null, decidedBy: null, decidedAt: null, justification: null, change: null, revocationError: null, openedAt: startedAt,
      };
      await refusalsAreFinal(() => evidence.append({
        ticketKey: certificationChain(id),
        stepId: 'open',
        outcome: 'certification-opened',
        actionKind: 'certification',
        system: item.system,
        identity: { ...identity, ...(owner ? { owner } : {}), ...(item.workload ? { workload: item.workload } : {}) },
        desiredState: {},
        observedState: { exists: observed.exists, grants, trigger: item.trigger, reference: item.reference, reviewer: item.reviewer, dueAt: item.dueAt },
        // A read-back of what the identity holds now, which the reviewer decides on; it changes nothing.
        verified: false,
        verification: { readBack: 'connector inspect' },
        actor,
        eventReceivedAt: request.at,
        startedAt,
        verifiedAt: null,
      }, certifications.openProjection(item)));
      await nameOnFinding(item, request);
      return (await certifications.get(id)) ?? item;
    },

    /**
     * Records a decision (a person's, or the policy's at the due date) as evidence, with the item's row, before it
     * counts. The item as its row holds it comes back: an item decided already (a retry after a committed record)
     * keeps its first decision, and the workflow takes that one.
     */
    async recordCertificationDecision(input: RecordCertificationDecisionInput): Promise<{ evidenceHash: string; item: CertificationItem }> {
      const item = await certifications.get(input.id);
      if (!item) throw refused(`no certification item ${input.id}`);
      const now = new Date().toISOString();
      const byPolicy = input.principal === undefined;
      try {
        const row = await evidence.append({
          ticketKey: certificationChain(input.id),
          stepId: 'decision',
          outcome: byPolicy ? 'certification-timeout' : 'certification-decided',
          actionKind: 'certification',
          system: item.system,
          identity: { type: item.type, name: item.name, ...(item.host ? { host: item.host } : {}) },
          desiredState: { keep: input.decisions.filter((d) => d.decision === 'keep').map((d) => d.grant), revoke: input.decisions.filter((d) => d.decision === 'revoke').map((d) => d.grant) },
          observedState: { status: input.status },
          // A decision is not a read-back of a target: it never counts as a verified change.
          verified: false,
          verification: { decisions: input.decisions, justification: input.justification, decidedBy: byPolicy ? `policy: onTimeout ${item.onTimeout} at ${item.dueAt}` : 'reviewer' },
          actor,
          ...(input.principal ? { principal: input.principal } : {}),
          eventReceivedAt: input.requestedAt,
          startedAt: now,
          verifiedAt: null,
        }, certifications.decisionProjection(input.id, { status: input.status, decisions: input.decisions, decidedBy: input.principal ?? null, decidedAt: now, justification: input.justification }));
        return { evidenceHash: row.hash, item: (await certifications.get(input.id)) as CertificationItem };
      } catch (err) {
        if (err instanceof AlreadyDecided) {
          const first = (await evidence.list(certificationChain(input.id))).find((r) => r.stepId === 'decision');
          return { evidenceHash: first?.hash ?? '', item: (await certifications.get(input.id)) as CertificationItem };
        }
        if (err instanceof EvidenceRefusal) {
          // The justification holds something shaped like a credential: the person must say it another way.
          throw ApplicationFailure.create({ message: `justification: ${err.message}`, type: 'BadRequest', nonRetryable: true, cause: err });
        }
        throw err;
      }
    },

    /**
     * keep-and-escalate at the due date: the access stays, the item is escalated (evidence, with its row) and still
     * waits for its reviewer's decision; the escalation is announced, signed, to the notification receiver. An item
     * decided meanwhile comes back as it is.
     */
    async escalateCertification({ id }: { id: string }): Promise<CertificationItem> {
      const item = await certifications.get(id);
      if (!item) throw refused(`no certification item ${id}`);
      if (item.status !== 'open' && item.status !== 'escalated') return item;
      const now = new Date().toISOString();
      await refusalsAreFinal(() => evidence.append({
        ticketKey: certificationChain(id),
        stepId: 'escalation',
        outcome: 'certification-escalated',
        actionKind: 'certification',
        system: item.system,
        identity: { type: item.type, name: item.name, ...(item.host ? { host: item.host } : {}) },
        desiredState: {},
        observedState: { status: 'escalated', kept: item.grants, reviewer: item.reviewer, dueAt: item.dueAt },
        verified: false,
        verification: { decidedBy: `policy: onTimeout ${item.onTimeout} at ${item.dueAt}: kept until the reviewer decides` },
        actor,
        eventReceivedAt: item.dueAt,
        startedAt: now,
        verifiedAt: null,
      }, certifications.escalationProjection(id)));
      if (deps.notify) {
        try {
          await sendNotification(deps.notify, 'certification.escalated', `${id}:certification.escalated`, {
            certification: id, system: item.system, identity: item.name, grants: item.grants, reviewer: item.reviewer, dueAt: item.dueAt, trigger: item.trigger, reference: item.reference,
          });
        } catch (err) {
          // Past a few attempts the item goes on escalated without its announcement (it is listed as overdue).
          if (Context.current().info.attempt < NOTIFY_ATTEMPTS) throw err;
        }
      }
      return (await certifications.get(id)) as CertificationItem;
    },

    /**
     * Opens the standard change that carries an item's revocations. No kind takes away exactly some grants, so it is
     * a mover whose wanted set is what the identity holds when the change is opened, read back now, less the revoked
     * grants: grants kept or added since the item opened stay, a grant removed since is not re-added, and revoking
     * every grant never deletes or disables the identity (a mover to no managed grants). The change runs like any other (read back, evidenced, on its own ticket); opening it is evidence
     * in the item's chain, with the change named on the item. A retry finds the change by its correlation id.
     */
    async openCertificationRevocation({ id }: { id: string }): Promise<CertificationItem> {
      const item = await certifications.get(id);
      if (!item?.decisions) throw refused(`certification item ${id} has no decision to carry out`);
      if (item.change || item.status !== 'revoking') return item;
      const kept = item.decisions.filter((d) => d.decision === 'keep').map((d) => d.grant);
      const revoked = item.decisions.filter((d) => d.decision === 'revoke').map((d) => d.grant);
      const connector = registry.get(item.system);
      const held = (await refusalsAreFinal(() => connector.inspect({ type: item.type === 'person' ? 'person' : 'service_account', name: item.name, ...(item.host ? { host: item.host } : {}) }))).grants;
      const action = revocationAction(item, held.filter((g) => isManaged(connector.grammar, g)), revoked);
      const source = policy?.certification?.source ?? 'servicenow';
      const adapter = writeBackFor(source);
      const identity = { type: item.type, name: item.name, ...(item.host ? { host: item.host } : {}) };
      /** A change the ticket system will not open is no reason to retry: the item says why, and a person acts. */
      const failed = async (reason: string) => {
        const now = new Date().toISOString();
        await refusalsAreFinal(() => evidence.append({
          ticketKey: certificationChain(id), stepId: 'revocation', outcome: 'revocation-failed', actionKind: 'certification', system: item.system, identity,
          desiredState: { action }, observedState: { error: reason }, verified: false, verification: {}, actor, eventReceivedAt: item.decidedAt ?? now, startedAt: now, verifiedAt: null,
        }, certifications.revocationFailedProjection(id, reason)));
        return (await certifications.get(id)) as CertificationItem;
      };
      if (!adapter.openChange) return failed(`the ticket source ${source} cannot open changes`);
      const who = item.decidedBy ? item.decidedBy.name : `the policy (onTimeout ${item.onTimeout})`;
      const change = await adapter.openChange({
        correlationId: `changegate-certification-${id}`,
        emergency: false,
        title: `Certification of ${item.name} on ${item.system}: revoke ${revoked.length} grant(s)`,
        description: `Certification item ${id} (${item.trigger}: ${item.reference}) was decided by ${who}: revoke ${revoked.join(', ') || 'everything'}; keep ${kept.join(', ') || 'nothing'}. This standard change carries it out: a mover to what the identity held when it was opened, less the revoked grants.`,
        actionsText: JSON.stringify([action]),
      }).catch((err: unknown) => {
        if (err instanceof WriteBackError && err.kind === 'refused') return err;
        throw err;
      });
      if (change instanceof WriteBackError) return failed(`the ticket source ${source} refused to open the revocation change: ${change.message}`);
      const changeKey = `${source}:${change.key}`;
      const now = new Date().toISOString();
      await refusalsAreFinal(() => evidence.append({
        ticketKey: certificationChain(id),
        stepId: 'revocation',
        outcome: 'revocation-opened',
        actionKind: 'certification',
        system: item.system,
        identity: { type: item.type, name: item.name, ...(item.host ? { host: item.host } : {}) },
        desiredState: { action },
        observedState: { change: changeKey },
        // Opening a change proves nothing on the target: the change's own steps are read back and evidenced.
        verified: false,
        verification: {},
        actor,
        eventReceivedAt: item.decidedAt ?? now,
        startedAt: now,
        verifiedAt: null,
      }, certifications.changeProjection(id, changeKey)));
      return (await certifications.get(id)) as CertificationItem;
    },

    /**
     * A mover or rotation step verified: opens an item when the policy's trigger is on, unless the change is one the
     * gateway opened itself to carry out a certification's revocation or a drift remediation (its ticket is named on
     * the item or the finding): certifying that would ask again what was just decided.
     */
    async certifyStep(input: StepCertificationInput): Promise<{ id: string; started: boolean } | null> {
      if (await certifications.changeOpenedByGateway(input.ticketKey) || await drift.isRemediationChange(input.ticketKey)) return null;
      return start(
        { trigger: input.trigger, reference: `${input.ticketKey}#${input.stepId}`, system: input.system, identity: input.identity, at: input.at, detail: `${input.trigger === 'mover' ? 'a mover' : 'a credential rotation'} completed verified on ${input.ticketKey}` },
        policy?.certifies(input.trigger) === true,
      );
    },

    /**
     * Starts an item for each open drift finding the policy says to certify. The item's opening names it on the
     * finding (openCertification), so a finding never names an item that has no row; until then the next run starts
     * it again, which finds the same workflow.
     */
    async certifyDrift(): Promise<Array<{ finding: string; certification: string }>> {
      if (!deps.startCertification || !policy?.certification) return [];
      const started: Array<{ finding: string; certification: string }> = [];
      for (const f of await drift.toCertify()) {
        if (!registry.names().includes(f.system)) continue;
        const row = await inventory.find(f.system, f.name, f.host);
        const identity = row ? identityOfRow(row) : { type: 'service_account' as const, name: f.name, ...(f.host ? { host: f.host } : {}) };
        const request: CertificationRequest = { trigger: 'drift', reference: f.id, system: f.system, identity, at: f.lastSeenAt, detail: `drift ${f.type}${f.grant ? ` (${f.grant})` : ''}: ${f.detail}` };
        const { id } = await deps.startCertification(request);
        started.push({ finding: f.id, certification: id });
      }
      return started;
    },
  };
}

/** The trigger an identity's hand-over to another owner (a leaver by owner, a decommission) sends. */
export function reassignCertifier(policy: Policy | undefined, startCertification: StartCertification | undefined) {
  return async (request: CertificationRequest): Promise<void> => {
    if (policy?.certifies('reassign') && startCertification) await startCertification(request);
  };
}

export type CertificationActivities = ReturnType<typeof createCertificationActivities>;
