import { progressSoFar, recordProgress } from './keep-alive';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { IdentityRef, SecretDestination } from '../src/actions/identity-action';
import { type DesiredAccount, type ObservedAccount, type Verification, verifyAccount } from '../src/connectors/connector';
import { ConnectorRefusal, FailureType } from '../src/connectors/connector-errors';
import { partsEvidence, type Secret } from '../src/connectors/secret';
import type { ConnectorRegistry } from '../src/connectors/registry';
import { expireGrants, revokeIdentity } from '../src/connectors/revoke-policy';
import { describeMove, isManaged, type MovePlan, planMove } from '../src/kinds/mover/move-plan';
import type { AlongsideEvidence, EvidenceInput, EvidenceStore } from '../src/evidence/evidence-store';
import { EvidenceRefusal } from '../src/evidence/redaction';
import type { InventoryStore, StepChange } from '../src/inventory/inventory-store';

export interface ConnectorActivityDeps {
  registry: ConnectorRegistry;
  evidence: EvidenceStore;
  /** Who performs the change, as recorded in evidence (worker identity). */
  actor: string;
  /** The identity inventory, written in the transaction of each verified step's evidence row. */
  inventory?: InventoryStore;
}

/** What the action says about the identity beyond its name: recorded with its evidence and in the inventory. */
export interface Attribution {
  owner?: string;
  workload?: string;
}

export interface StepTarget {
  system: string;
  identity: IdentityRef;
}

export interface VerifyAndRecordInput extends StepTarget, Attribution {
  ticketKey: string;
  stepId: string;
  /** What a verified outcome is called in evidence: revoked, granted, expired. */
  outcome: string;
  actionKind: string;
  desired: DesiredAccount;
  applied: string;
  eventReceivedAt: string;
  startedAt: string;
  /** Record a failed row when the target still disagrees (the workflow's last attempt). */
  recordOnFailure: boolean;
}

/** What one step does to its target: the connector primitives the step activities compose. */
export type StepOperation =
  | { op: 'revoke' }
  /** `standing`: standing access the policy allows; the inventory records the grants as owned by the action's owner. */
  | { op: 'grant'; grants: string[]; standing?: boolean }
  | { op: 'take-back'; grants: string[]; dropAccount: boolean }
  /**
   * A mover, planned from a read-back: `remove` takes back the managed grants that are not wanted (revoke early);
   * `reconcile` also adds the wanted ones that are missing (grant late), removing any excess that came back since.
   */
  | { op: 'move'; wanted: string[]; phase: 'remove' | 'reconcile'; standing?: boolean };

export interface ApplyVerifyRecordInput extends Omit<VerifyAndRecordInput, 'applied' | 'startedAt' | 'recordOnFailure'> {
  operation: StepOperation;
  /** Apply-and-read-back rounds before the step counts as not verified: a target may lag its acknowledgement. */
  attempts: number;
  /** The last heartbeat of the activity this one replaces, which lost its worker on its last attempt (a move's plan). */
  earlierProgress?: unknown;
}

export interface ApplyVerifyRecordResult {
  verified: boolean;
  /** The target refused the operation; the refusal is recorded as evidence (or the detail says why it could not be). */
  refused: boolean;
  detail: string;
  mismatches: string[];
  /** The operation created the account (a joiner's expiry then drops it). */
  created: boolean;
  /** A move: what it kept, removed, added (or, in the remove phase, has still to add) and left untouched. */
  moved?: MovePlan;
  verifiedAt?: string;
  evidenceHash?: string;
}

export interface VerifyResult {
  verified: boolean;
  mismatches: string[];
  observed: ObservedAccount;
  verifiedAt?: string;
  evidenceHash?: string;
}

export interface RotateInput extends StepTarget, Attribution {
  ticketKey: string;
  stepId: string;
  deliverTo: SecretDestination;
  eventReceivedAt: string;
}

/** What leaves the rotation activity: facts about the new credential, never the credential. */
export interface RotateResult {
  verified: boolean;
  detail: string;
  fingerprint: string;
  version: number;
  keyId?: string;
  verifiedAt?: string;
  evidenceHash: string;
}

export interface RecordFailureInput extends StepTarget {
  ticketKey: string;
  stepId: string;
  actionKind: string;
  desired: DesiredAccount;
  error: string;
  eventReceivedAt: string;
  startedAt: string;
}

/**
 * Turns a connector's refusal, or the evidence store's, into a non-retryable failure with its type; the original
 * error stays as cause. An evidence refusal is deterministic (the same read-back is refused every time), so retrying
 * it would only hold the step in "running" for the whole retry budget before failing anyway. A transient error that carries the target's `Retry-After` (as `retryAfterMs`) retries no sooner than it asks.
 */
export async function refusalsAreFinal<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ConnectorRefusal) {
      throw ApplicationFailure.create({ message: err.message, type: err.type, nonRetryable: true, cause: err });
    }
    if (err instanceof EvidenceRefusal) {
      // nonRetryable through create(), which also keeps the refusal as cause; its message names a path and a kind of
      // value, never the value.
      throw ApplicationFailure.create({ message: err.message, type: FailureType.EvidenceRefused, nonRetryable: true, cause: err, details: [{ path: err.path, reason: err.reason }] });
    }
    const retryAfterMs = (err as { retryAfterMs?: unknown } | null)?.retryAfterMs;
    if (typeof retryAfterMs === 'number' && retryAfterMs > 0) {
      throw ApplicationFailure.create({
        message: err instanceof Error ? err.message : 'target asked to retry later',
        type: 'TargetThrottled',
        nextRetryDelay: Math.min(retryAfterMs, 3_600_000),
        cause: err instanceof Error ? err : undefined,
      });
    }
    throw err;
  }
}

/** Up to three tries, 0.5 s then 1 s apart, for transient faults only; a refusal ends at once. */
async function withRetries<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ConnectorRefusal || attempt >= 3) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

/** The whole value, and for a structured credential (an access key pair as JSON) each of its secret parts. */
export function containsSecret(text: string, secret: Secret): boolean {
  const value = secret.reveal();
  if (text.includes(value)) return true;
  try {
    const parsed: unknown = JSON.parse(value);
    if (parsed && typeof parsed === 'object') {
      // Identifiers (`accessKeyId`) are not secret and are recorded on purpose; every other part is.
      return Object.entries(parsed as Record<string, unknown>).some(([k, v]) => !/Id$/.test(k) && typeof v === 'string' && v.length >= 8 && text.includes(v));
    }
  } catch {
    // not structured
  }
  return false;
}

/** The evidence row a read-back becomes: what `verifyAndRecord` appends, and what tests pass through the secret check. */
export function readBackRecord(
  input: Omit<VerifyAndRecordInput, 'recordOnFailure'>,
  observed: ObservedAccount,
  verification: Verification,
  actor: string,
  verifiedAt: string | null,
  attempts?: StepAttempts,
): EvidenceInput {
  return {
    ticketKey: input.ticketKey,
    stepId: input.stepId,
    outcome: verification.verified ? input.outcome : 'failed',
    actionKind: input.actionKind,
    system: input.system,
    identity: { ...input.identity, ...attributionOf(input) },
    desiredState: { ...input.desired },
    observedState: { ...observed },
    verified: verification.verified,
    verification: { mismatches: verification.mismatches, applied: input.applied, ...(attempts ? { attempts } : {}) },
    actor,
    eventReceivedAt: input.eventReceivedAt,
    startedAt: input.startedAt,
    verifiedAt,
  };
}

/**
 * How hard a step had to try, recorded with its row so that failures and retries per target system are read from
 * evidence: `activity` is Temporal's attempt of the activity (a transient fault retried it), `readBack` the round of
 * act-and-read-back within it (the target caught up late).
 */
export interface StepAttempts {
  activity: number;
  readBack?: number;
}

/** This activity's attempt as Temporal counts it; 1 outside a worker. */
export function activityAttempts(): StepAttempts {
  return { activity: currentActivity()?.info.attempt ?? 1 };
}

/** What setDeliverAndProve leaves with its caller, inside the same activity: the value goes no further. */
export interface DeliveredCredential {
  secret: Secret;
  version: number;
  authenticates: boolean;
  served: { version: number; fingerprint: string } | null;
  mismatches: string[];
  applied: string;
  credentialId?: string;
}

/**
 * The heart of a rotation, for any activity that sets a credential (a rotation, a deploy run's mint): check the
 * destination, set a new value on the target, deliver it to the secrets store, and read both back — the target must
 * accept it and the store must serve the same fingerprint. A two-phase target then retires its other credentials.
 * Call it only inside an activity: the returned Secret must not cross into workflow history.
 */
export async function setDeliverAndProve(
  registry: ConnectorRegistry,
  input: StepTarget & { deliverTo: SecretDestination; metadata: Record<string, string> },
): Promise<DeliveredCredential> {
  // Declared capabilities, not method sniffing: a system whose type does not declare rotation is refused here.
  const rotation = await refusalsAreFinal(async () => registry.rotator(input.system));
  const connector = rotation.rotator;
  const sink = await refusalsAreFinal(async () => registry.sink(input.deliverTo.system));
  // The destination is checked before anything changes: a refused write must not leave a rotated, undelivered credential.
  await refusalsAreFinal(() => sink.checkDestination(input.deliverTo.path));
  const rotated = await refusalsAreFinal(() => connector.rotate(input.identity));
  const { secret } = rotated;
  // The target already holds the new value: a transient store fault is retried here with the same secret, since
  // a retry of the whole activity would rotate again and leave the target ahead of the store meanwhile.
  const { version } = await refusalsAreFinal(() => withRetries(() => sink.deliver(input.deliverTo.path, secret, input.metadata)));
  const authenticates = await refusalsAreFinal(() => connector.authenticates(input.identity, secret));
  const served = await refusalsAreFinal(() => sink.currentFingerprint(input.deliverTo.path));
  const mismatches: string[] = [];
  if (!authenticates) mismatches.push('the target does not accept the new credential');
  if (served?.fingerprint !== secret.fingerprint) mismatches.push('the secrets store does not serve the new credential');
  let applied = rotated.detail;
  if (mismatches.length === 0 && rotation.phases === 2) {
    if (!rotated.credentialId) {
      throw ApplicationFailure.create({ message: `${input.system}: rotation named no new credential, so nothing else is retired`, type: 'TargetRefused', nonRetryable: true });
    }
    // Two-phase targets keep the previous credential until the new one is delivered and proven to work.
    const keep = rotated.credentialId;
    const retired = await refusalsAreFinal(() => rotation.rotator.retireOthers(input.identity, keep));
    applied = `${applied}; ${retired.detail}`;
  }
  return { secret, version, authenticates, served, mismatches, applied, ...(rotated.credentialId ? { credentialId: rotated.credentialId } : {}) };
}

/** The running activity's context; none when an activity function is called directly (outside a worker). */
function currentActivity(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** The move plan an earlier attempt (or the lost activity this one replaces) recorded with its heartbeat before it acted. */
function earlierAttemptMove(): MovePlan | undefined {
  const details = progressSoFar() as { move?: Partial<MovePlan> } | undefined;
  const m = details?.move;
  const list = (x: unknown) => (Array.isArray(x) && x.every((g) => typeof g === 'string') ? (x as string[]) : undefined);
  const [kept, remove, add, unmanaged] = [list(m?.kept), list(m?.remove), list(m?.add), list(m?.unmanaged)];
  return kept && remove && add && unmanaged ? { kept, remove, add, unmanaged } : undefined;
}

function attributionOf(a: Attribution): Attribution {
  return { ...(a.owner !== undefined ? { owner: a.owner } : {}), ...(a.workload !== undefined ? { workload: a.workload } : {}) };
}

/**
 * The inventory's share of a verified step's evidence row: it commits with the row or not at all. A failed row
 * changes nothing in the inventory (the target's state is not what anyone asked for, and the evidence says so).
 */
export function inventoryProjection(
  registry: ConnectorRegistry,
  inventory: InventoryStore | undefined,
  record: EvidenceInput,
  target: StepTarget & Attribution,
  extra: { operation: StepChange['operation']; grants?: string[]; created?: boolean; detail?: string; standing?: boolean },
): AlongsideEvidence | undefined {
  if (!inventory || !record.verified || !record.verifiedAt) return undefined;
  const { grammar } = registry.get(target.system);
  const change: StepChange = {
    ticketKey: record.ticketKey,
    system: record.system,
    identity: { type: grammar.inventoryType?.(target.identity.name) ?? target.identity.type, name: target.identity.name },
    host: target.identity.host ?? grammar.defaultHost ?? '',
    outcome: record.outcome,
    desired: record.desiredState,
    observed: record.observedState,
    verifiedAt: record.verifiedAt,
    ...extra,
    ...attributionOf(target),
  };
  return inventory.stepProjection(change);
}

export function createConnectorActivities({ registry, evidence, actor, inventory }: ConnectorActivityDeps) {
  const projection = (record: EvidenceInput, target: StepTarget & Attribution, extra: Parameters<typeof inventoryProjection>[4]) =>
    inventoryProjection(registry, inventory, record, target, extra);

  async function applyOperation(
    ticketKey: string,
    system: string,
    identity: IdentityRef,
    operation: StepOperation,
    earlierMove?: MovePlan,
  ): Promise<{ detail: string; created: boolean; expected?: DesiredAccount; moved?: MovePlan }> {
    if (operation.op === 'move') return move(system, identity, operation.wanted, operation.phase, earlierMove);
    if (operation.op === 'revoke') return { created: false, ...(await revoke({ system, identity })) };
    if (operation.op === 'grant') return refusalsAreFinal(() => registry.get(system).provision(identity, operation.grants));
    return { created: false, ...(await takeBack(ticketKey, { system, identity, grants: operation.grants, dropAccount: operation.dropAccount })) };
  }

  /**
   * Counted overlap: a grant another ticket also holds (the inventory says which tickets hold each grant) is kept
   * when this ticket's hold ends, and the account it sits on is not dropped; the read-back must then find it still
   * held, and the evidence says by whom. The inventory is read under the identity's lock (applyVerifyRecord), so no
   * other step on the identity changes it between this decision and this step's own record.
   */
  async function takeBack(ticketKey: string, target: StepTarget & { grants: string[]; dropAccount: boolean }) {
    const held = inventory ? await heldElsewhere(inventory, ticketKey, target) : new Map<string, string[]>();
    if (held.size === 0) return expire(target);
    const keep = [...held.keys()];
    const take = target.grants.filter((g) => !held.has(g));
    const out = await expire({ ...target, grants: take, dropAccount: false });
    const kept = keep.map((g) => `kept: ${g} still held by ${held.get(g)!.join(', ')}`).join('; ');
    if (out.expected.exists === false) return { ...out, detail: `${out.detail}; ${kept}` };
    return { changed: out.changed, detail: `${out.detail}; ${kept}`, expected: { exists: true, mustNotHave: take, mustHave: keep } };
  }

  async function heldElsewhere(store: InventoryStore, ticketKey: string, { system, identity, grants }: StepTarget & { grants: string[] }): Promise<Map<string, string[]>> {
    const { grammar } = registry.get(system);
    const row = await store.find(system, identity.name, identity.host ?? grammar.defaultHost ?? '');
    const held = new Map<string, string[]>();
    for (const g of grants) {
      const others = row?.grants.find((x) => x.grant === g)?.tickets.filter((t) => t !== ticketKey) ?? [];
      if (others.length > 0) held.set(g, others);
    }
    return held;
  }

  /** A leaver under the instance's policy; what the read-back must find comes from the policy, not the connector. */
  function revoke({ system, identity }: StepTarget) {
    return refusalsAreFinal(() => revokeIdentity(registry.get(system), identity, registry.revokeMode(system)));
  }

  function expire({ system, identity, grants, dropAccount }: StepTarget & { grants: string[]; dropAccount: boolean }) {
    return refusalsAreFinal(() => expireGrants(registry.get(system), identity, grants, dropAccount, registry.revokeMode(system)));
  }

  /**
   * Reads the identity back and plans the move from what it really holds; grants the connector does not manage are
   * reported and never touched. A mover changes an existing identity: one that is not there is refused.
   *
   * What the move removed (and, reconciling, added) is the plan of the first round that acted plus whatever later
   * rounds found to do: a retried attempt reads back a target its earlier attempt already changed and plans nothing
   * for those grants, so the earlier plan comes with it (`earlier`: this attempt's previous round, or the plan the
   * previous attempt recorded with its heartbeat before it acted). The read-back then has to show each of them gone
   * (or present) before the step counts, so the report is the plan as the target confirms it, not a lost answer.
   */
  async function move(system: string, identity: IdentityRef, wanted: string[], phase: 'remove' | 'reconcile', earlier?: MovePlan) {
    const connector = registry.get(system);
    return refusalsAreFinal(async () => {
      const before = await connector.inspect(identity);
      if (!before.exists) {
        throw new ConnectorRefusal(FailureType.TargetRefused, `${system}: '${identity.name}' does not exist; a mover changes an existing identity's access (a joiner creates one)`);
      }
      const now = planMove(before.grants, wanted, (g) => isManaged(connector.grammar, g));
      const union = (a: string[], b: string[]) => [...new Set([...a, ...b])].sort();
      // What remains to add, in the remove phase, is what this read-back finds missing; reconciling, it is what was added.
      const plan: MovePlan = earlier
        ? { kept: now.kept, remove: union(earlier.remove, now.remove).filter((g) => !wanted.includes(g)), add: phase === 'reconcile' ? union(earlier.add, now.add) : now.add, unmanaged: now.unmanaged }
        : now;
      // Recorded before acting: an attempt whose answer is lost hands its plan to the next one (Temporal keeps it).
      recordProgress({ move: plan });
      if (now.remove.length > 0) await connector.ungrant(identity, now.remove);
      const adding = phase === 'reconcile' ? now.add : [];
      if (adding.length > 0) await connector.provision(identity, adding);
      const expected: DesiredAccount = { exists: true, mustNotHave: plan.remove, ...(phase === 'reconcile' ? { mustHave: wanted } : {}) };
      return { detail: describeMove(phase === 'reconcile' ? plan : { ...plan, add: [] }), created: false, expected, moved: plan };
    });
  }

  async function appendFailure(input: RecordFailureInput): Promise<{ evidenceHash: string }> {
    let observed: ObservedAccount | { error: string };
    try {
      observed = await registry.get(input.system).inspect(input.identity);
    } catch (err) {
      observed = { error: err instanceof Error ? err.message : 'inspect failed' };
    }
    const row = await refusalsAreFinal(() => evidence.append({
      ticketKey: input.ticketKey,
      stepId: input.stepId,
      outcome: 'failed',
      actionKind: input.actionKind,
      system: input.system,
      identity: { ...input.identity },
      desiredState: { ...input.desired },
      observedState: { ...observed },
      verified: false,
      verification: { error: input.error, attempts: activityAttempts() },
      actor,
      eventReceivedAt: input.eventReceivedAt,
      startedAt: input.startedAt,
      verifiedAt: null,
    }));
    return { evidenceHash: row.hash };
  }

  /** One step's act, read-back and evidence row: applyVerifyRecord, under the identity's lock when there is an inventory. */
  async function applyVerifyRecordOnce(input: ApplyVerifyRecordInput): Promise<ApplyVerifyRecordResult> {
    const { operation, attempts, ...step } = input;
    let desired = input.desired;
    let startedAt = '';
    let created = false;
    // A move retried after its earlier attempt acted: that attempt's plan, as its heartbeat recorded it.
    let moved: MovePlan | undefined = operation.op === 'move' ? earlierAttemptMove() : undefined;
    for (let attempt = 1; ; attempt++) {
      startedAt ||= new Date().toISOString();
      let applied: { detail: string; created: boolean; expected?: DesiredAccount; moved?: MovePlan };
      try {
        applied = await applyOperation(input.ticketKey, input.system, input.identity, operation, moved);
      } catch (err) {
        if (!(err instanceof ApplicationFailure) || !err.nonRetryable) throw err;
        const failure = { ...step, desired, error: err.message, startedAt };
        try {
          await appendFailure(failure);
          return { verified: false, refused: true, detail: err.message, mismatches: [], created };
        } catch (recordErr) {
          if (!(recordErr instanceof ApplicationFailure) || !recordErr.nonRetryable) throw recordErr;
          return { verified: false, refused: true, detail: `${err.message} (and its evidence could not be recorded: ${recordErr.message})`, mismatches: [], created };
        }
      }
      created ||= applied.created;
      // Each round's plan includes the earlier rounds' (and attempts'): a later round only repeats what the target has
      // not shown yet.
      moved = applied.moved ?? moved;
      // The revoke policy says what a leaver or an expiry leaves behind (deleted, disabled and stripped, or already gone).
      if (applied.expected) desired = applied.expected;
      const observed = await refusalsAreFinal(() => registry.get(input.system).inspect(input.identity));
      const verification = verifyAccount(desired, observed);
      if (!verification.verified && attempt < attempts) continue;
      const verifiedAt = verification.verified ? new Date().toISOString() : null;
      const record = readBackRecord({ ...step, desired, applied: applied.detail, startedAt }, observed, verification, actor, verifiedAt, { ...activityAttempts(), readBack: attempt });
      // A move's ticket holds every grant it wants once they are all in place (its reconcile phase).
      const grants = operation.op === 'revoke' ? undefined : operation.op === 'move' ? (operation.phase === 'reconcile' ? operation.wanted : []) : operation.grants;
      const standing = (operation.op === 'grant' || operation.op === 'move') && operation.standing === true;
      const row = await refusalsAreFinal(() => evidence.append(record, projection(record, input, { operation: operation.op, grants, created, detail: applied.detail, ...(standing ? { standing } : {}) })));
      return {
        verified: verification.verified, refused: false, detail: applied.detail, mismatches: verification.mismatches, created,
        ...(moved ? { moved } : {}), verifiedAt: row.verifiedAt ?? undefined, evidenceHash: row.hash,
      };
    }
  }

  return {
    /**
     * A whole step in one activity: act, read the target back (acting and reading again, up to `attempts` rounds,
     * while it disagrees), and append the evidence row before the step counts. A refusal is recorded as evidence
     * and returned; a transient fault throws, and Temporal retries the whole activity, every part of which is
     * idempotent.
     */
    async applyVerifyRecord(input: ApplyVerifyRecordInput): Promise<ApplyVerifyRecordResult> {
      if (!inventory) return applyVerifyRecordOnce(input);
      // Decide, act, read back and record as one turn per identity: a take-back decides from which other tickets the
      // inventory says still hold a grant, and that must not change between the decision and the record (two tickets
      // ending the same grant at once would each see the other holding it, and both keep it).
      const host = await refusalsAreFinal(async () => input.identity.host ?? registry.get(input.system).grammar.defaultHost ?? '');
      return inventory.withIdentityLock({ system: input.system, name: input.identity.name, host }, () => applyVerifyRecordOnce(input));
    },

    async applyLeaver({ system, identity }: StepTarget): Promise<{ changed: boolean; detail: string; startedAt: string; expected?: DesiredAccount }> {
      const startedAt = new Date().toISOString();
      return { ...(await revoke({ system, identity })), startedAt };
    },

    async applyJoiner({ system, identity, grants }: StepTarget & { grants: string[] }): Promise<{ created: boolean; detail: string; startedAt: string }> {
      const startedAt = new Date().toISOString();
      const out = await refusalsAreFinal(() => registry.get(system).provision(identity, grants));
      return { ...out, startedAt };
    },

    async applyExpiry(input: StepTarget & { grants: string[]; dropAccount: boolean }) {
      const startedAt = new Date().toISOString();
      return { ...(await expire(input)), startedAt };
    },

    /** Reads the target back, compares it with the desired state, and records the outcome in the evidence chain. */
    async verifyAndRecord(input: VerifyAndRecordInput): Promise<VerifyResult> {
      const observed = await refusalsAreFinal(() => registry.get(input.system).inspect(input.identity));
      const verification = verifyAccount(input.desired, observed);
      if (!verification.verified && !input.recordOnFailure) return { ...verification, observed };
      const verifiedAt = verification.verified ? new Date().toISOString() : null;
      const record = readBackRecord(input, observed, verification, actor, verifiedAt, activityAttempts());
      // Runs started before one-activity steps: the operation and grants follow from the desired state; who created
      // the account is not known here.
      const operation = input.desired.mustHave ? 'grant' : input.desired.mustNotHave ? 'take-back' : 'revoke';
      const grants = input.desired.mustHave ?? input.desired.mustNotHave;
      const row = await refusalsAreFinal(() => evidence.append(record, projection(record, input, { operation, grants, detail: input.applied })));
      return { ...verification, observed, verifiedAt: row.verifiedAt ?? undefined, evidenceHash: row.hash };
    },

    /**
     * Rotation in one activity, so the new value never crosses into workflow history: set it on the target, deliver
     * it to the secrets store, then read both back — the target must accept the new credential and the store must
     * serve a value with the same fingerprint. Evidence gets the fingerprint and store version, never the value.
     * A retry after a transient fault rotates again, which leaves the target and the store consistent.
     */
    async rotateAndDeliver(input: RotateInput): Promise<RotateResult> {
      const startedAt = new Date().toISOString();
      const { secret, version, authenticates, served, mismatches, applied, credentialId } = await setDeliverAndProve(registry, {
        system: input.system, identity: input.identity, deliverTo: input.deliverTo,
        metadata: { ticket: input.ticketKey, system: input.system, identity: input.identity.name },
      });
      const rotated = { credentialId };
      const verified = mismatches.length === 0;
      const record = {
        ticketKey: input.ticketKey,
        stepId: input.stepId,
        outcome: verified ? 'rotated' : 'failed',
        actionKind: 'rotate',
        system: input.system,
        identity: { ...input.identity, ...attributionOf(input) },
        desiredState: { rotated: true, deliveredTo: { ...input.deliverTo } },
        observedState: {
          fingerprint: secret.fingerprint,
          storeVersion: version,
          storeFingerprint: served?.fingerprint ?? null,
          targetAccepts: authenticates,
          ...(rotated.credentialId ? { keyId: rotated.credentialId } : {}),
          ...partsEvidence(secret),
        },
        verified,
        verification: { mismatches, applied },
        actor,
        eventReceivedAt: input.eventReceivedAt,
        startedAt,
        verifiedAt: verified ? new Date().toISOString() : null,
      };
      const row = await refusalsAreFinal(async () => {
        if (containsSecret(JSON.stringify(record), secret)) throw new EvidenceRefusal('', 'the rotated value');
        return evidence.append(record, projection(record, input, { operation: 'rotate', detail: applied }));
      });
      return {
        verified,
        detail: verified ? `${applied}; delivered to ${input.deliverTo.system}:${input.deliverTo.path} v${version} (${secret.fingerprint})` : mismatches.join('; '),
        fingerprint: secret.fingerprint,
        version,
        ...(rotated.credentialId ? { keyId: rotated.credentialId } : {}),
        verifiedAt: row.verifiedAt ?? undefined,
        evidenceHash: row.hash,
      };
    },

    /** A step the target refused: the failure is evidence too, so the ticket shows why it stays blocked. */
    async recordFailure(input: RecordFailureInput): Promise<{ evidenceHash: string }> {
      return appendFailure(input);
    },
  };
}

export type ConnectorActivities = ReturnType<typeof createConnectorActivities>;
