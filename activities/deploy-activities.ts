import { ApplicationFailure } from '@temporalio/activity';
import type { IdentityRef, SecretDestination } from '../src/actions/identity-action';
import { GONE, type ObservedAccount, verifyAccount } from '../src/connectors/connector';
import type { ConnectorRegistry } from '../src/connectors/registry';
import { revokeIdentity } from '../src/connectors/revoke-policy';
import type { EvidenceInput, EvidenceStore } from '../src/evidence/evidence-store';
import { EvidenceRefusal } from '../src/evidence/redaction';
import { DeployRefusal } from '../src/kinds/deploy/run';
import type { InventoryStore } from '../src/inventory/inventory-store';
import { partsEvidence } from '../src/connectors/secret';
import { activityAttempts, containsSecret, inventoryProjection, refusalsAreFinal, setDeliverAndProve } from './connector-activities';

export interface DeployActivityDeps {
  registry: ConnectorRegistry;
  evidence: EvidenceStore;
  actor: string;
  /** The identity inventory: a run's identity is listed from its verified mint until its verified removal. */
  inventory?: InventoryStore;
}

/** One run's credential: the run's own identity on the target, and where its secret is delivered. */
export interface DeployCredentialInput {
  ticketKey: string;
  /**
   * The run's evidence rows: `deploy:<actionId>:run:<runId>` for its mint (the claim on its identity, then the
   * mint), `…:run:<runId>:revoke` for its revocation, so a mint and a revocation that both fail are two rows.
   */
  stepId: string;
  runId: string;
  system: string;
  identity: IdentityRef;
  grants: string[];
  deliverTo: SecretDestination;
  eventReceivedAt: string;
}

export interface MintResult {
  verified: boolean;
  detail: string;
  fingerprint: string;
  version: number;
  verifiedAt?: string;
}

export interface RevokeRunResult {
  verified: boolean;
  detail: string;
  verifiedAt?: string;
}

/** The delivered secret as a `kv/<path>` identity of the store, which the store's own primitives remove. */
function storeIdentity(deliverTo: SecretDestination): IdentityRef {
  return { type: 'service_account', name: `kv/${deliverTo.path}` };
}

function mintedDetail(input: DeployCredentialInput, version: number, fingerprint: string): string {
  return `${input.identity.name} holds exactly ${input.grants.join(', ')}; delivered to ${input.deliverTo.system}:${input.deliverTo.path} v${version} (${fingerprint}), and it authenticates`;
}

/** Exactly: the listed grants and nothing else (a joiner only asks for at least them). */
function exactGrantMismatches(wanted: string[], observed: ObservedAccount): string[] {
  const want = new Set(wanted);
  const have = new Set(observed.grants);
  return [
    ...(observed.exists ? [] : ['account does not exist']),
    ...wanted.filter((g) => !have.has(g)).map((g) => `missing grant: ${g}`),
    ...observed.grants.filter((g) => !want.has(g)).map((g) => `grant beyond the listed ones: ${g}`),
  ];
}

/**
 * A pipeline run's short-lived credential, each operation in one activity so the value never reaches workflow
 * history: the mint creates the run's own identity with exactly the listed grants, sets its secret and delivers it
 * the way a rotation does (setDeliverAndProve), and proves all three; the revocation removes both the identity and the
 * delivered secret, whatever the instance's leaver policy (a run's identity exists for that run only), and reads both
 * back. Evidence holds fingerprints and versions, never the value.
 */
export function createDeployActivities({ registry, evidence, actor, inventory }: DeployActivityDeps) {
  return {
    async mintDeployCredential(input: DeployCredentialInput): Promise<MintResult> {
      const startedAt = new Date().toISOString();
      const target = registry.get(input.system);
      const earlier = (await evidence.list(input.ticketKey)).filter((r) => r.stepId === input.stepId);
      // An earlier attempt minted and recorded it, and its answer was lost: that is the answer, and nothing is minted again.
      const minted = earlier.find((r) => r.outcome === 'minted');
      if (minted) {
        const fingerprint = String(minted.observedState.fingerprint);
        const version = Number(minted.observedState.storeVersion);
        return { verified: true, detail: mintedDetail(input, version, fingerprint), fingerprint, version, verifiedAt: minted.verifiedAt ?? undefined };
      }
      // The run's identity must be one this run creates. Before creating it the mint records, as evidence, that the
      // identity was absent (its claim): any attempt that finds the identity present without that claim — the first or
      // a retry after a fault — refuses it as someone else's (a name made to collide), neither granted to nor, later,
      // removed; a retry that finds the claim knows the identity is the one its earlier attempt created.
      const claimed = earlier.some((r) => r.outcome === 'claimed');
      const found = await refusalsAreFinal(() => target.inspect(input.identity));
      if (found.exists && !claimed) {
        throw ApplicationFailure.create({
          type: DeployRefusal.IdentityTaken, nonRetryable: true,
          message: `${input.system}: '${input.identity.name}' already exists, so it is not this run's own credential; nothing was minted or changed`,
        });
      }
      if (!claimed) {
        await refusalsAreFinal(() => evidence.append({
          ticketKey: input.ticketKey,
          stepId: input.stepId,
          outcome: 'claimed',
          actionKind: 'deploy',
          system: input.system,
          identity: { ...input.identity },
          desiredState: { exists: false, run: input.runId },
          observedState: { ...found },
          verified: true,
          verification: { mismatches: [], applied: `${input.identity.name} absent before pipeline run ${input.runId}: created by this run` },
          actor,
          eventReceivedAt: input.eventReceivedAt,
          startedAt,
          verifiedAt: new Date().toISOString(),
        }));
      }
      // Idempotent: a retried mint finds the run's account (its name derives from the run) and grants nothing new.
      const provisioned = await refusalsAreFinal(() => target.provision(input.identity, input.grants));
      const delivered = await setDeliverAndProve(registry, {
        system: input.system, identity: input.identity, deliverTo: input.deliverTo,
        metadata: { ticket: input.ticketKey, run: input.runId, system: input.system, identity: input.identity.name },
      });
      const { secret } = delivered;
      const observed = await refusalsAreFinal(() => target.inspect(input.identity));
      const mismatches = [...delivered.mismatches, ...exactGrantMismatches(input.grants, observed)];
      const verified = mismatches.length === 0;
      const record = {
        ticketKey: input.ticketKey,
        stepId: input.stepId,
        outcome: verified ? 'minted' : 'failed',
        actionKind: 'deploy',
        system: input.system,
        identity: { ...input.identity },
        desiredState: { exists: true, exactGrants: input.grants, deliveredTo: { ...input.deliverTo }, run: input.runId },
        observedState: {
          ...observed,
          fingerprint: secret.fingerprint,
          storeVersion: delivered.version,
          storeFingerprint: delivered.served?.fingerprint ?? null,
          targetAccepts: delivered.authenticates,
          ...partsEvidence(secret),
        },
        verified,
        verification: { mismatches, applied: `${provisioned.detail}; ${delivered.applied}`, attempts: activityAttempts() },
        actor,
        eventReceivedAt: input.eventReceivedAt,
        startedAt,
        verifiedAt: verified ? new Date().toISOString() : null,
      };
      const row = await refusalsAreFinal(async () => {
        if (containsSecret(JSON.stringify(record), secret)) throw new EvidenceRefusal('', 'the minted value');
        return evidence.append(record, inventoryProjection(registry, inventory, record, input, { operation: 'grant', grants: input.grants, created: true, detail: 'minted for a pipeline run' }));
      });
      return {
        verified,
        detail: verified ? mintedDetail(input, delivered.version, secret.fingerprint) : mismatches.join('; '),
        fingerprint: secret.fingerprint,
        version: delivered.version,
        verifiedAt: row.verifiedAt ?? undefined,
      };
    },

    async revokeDeployCredential(input: DeployCredentialInput & { reason: string }): Promise<RevokeRunResult> {
      const startedAt = new Date().toISOString();
      const target = registry.get(input.system);
      const store = registry.get(input.deliverTo.system);
      const kv = storeIdentity(input.deliverTo);
      const removed = await refusalsAreFinal(() => revokeIdentity(target, input.identity, 'delete'));
      const unstored = await refusalsAreFinal(() => revokeIdentity(store, kv, 'delete'));
      const observed = await refusalsAreFinal(() => target.inspect(input.identity));
      const served = await refusalsAreFinal(() => store.inspect(kv));
      const mismatches = [
        ...verifyAccount(GONE, observed).mismatches,
        ...verifyAccount(GONE, served).mismatches.map((m) => `store copy: ${m.replace('account', 'delivered value')}`),
      ];
      const verified = mismatches.length === 0;
      const revoked: EvidenceInput = {
        ticketKey: input.ticketKey,
        stepId: input.stepId,
        outcome: verified ? 'revoked' : 'failed',
        actionKind: 'deploy',
        system: input.system,
        identity: { ...input.identity },
        desiredState: { exists: false, storeCopy: 'absent', run: input.runId, reason: input.reason },
        observedState: { ...observed, storeCopy: { system: input.deliverTo.system, path: input.deliverTo.path, exists: served.exists } },
        verified,
        verification: { mismatches, applied: `${removed.detail}; ${unstored.detail}`, attempts: activityAttempts() },
        actor,
        eventReceivedAt: input.eventReceivedAt,
        startedAt,
        verifiedAt: verified ? new Date().toISOString() : null,
      };
      const row = await refusalsAreFinal(() => evidence.append(revoked, inventoryProjection(registry, inventory, revoked, input, { operation: 'revoke', detail: input.reason })));
      return {
        verified,
        detail: verified ? `${input.identity.name} removed and ${input.deliverTo.system}:${input.deliverTo.path} deleted (${input.reason})` : mismatches.join('; '),
        verifiedAt: row.verifiedAt ?? undefined,
      };
    },

    /**
     * A deploy action's readiness, once the change is authorized: the secrets store accepts the action's destination
     * (checked under a sample run segment), so a run is not the first to learn that it cannot be delivered.
     */
    async checkDeployDestination(input: { ticketKey: string; stepId: string; system: string; identity: IdentityRef; deliverTo: SecretDestination; eventReceivedAt: string }): Promise<{ verifiedAt: string; detail: string }> {
      const startedAt = new Date().toISOString();
      const sink = await refusalsAreFinal(async () => registry.sink(input.deliverTo.system));
      await refusalsAreFinal(async () => registry.rotator(input.system));
      await refusalsAreFinal(() => sink.checkDestination(`${input.deliverTo.path}/run-check`));
      const row = await refusalsAreFinal(() => evidence.append({
        ticketKey: input.ticketKey,
        stepId: input.stepId,
        outcome: 'ready',
        actionKind: 'deploy',
        system: input.system,
        identity: { ...input.identity },
        desiredState: { deliverable: { ...input.deliverTo } },
        observedState: { destinationWritable: true },
        verified: true,
        verification: { mismatches: [], applied: 'authorized: each pipeline run may mint its own credential' },
        actor,
        eventReceivedAt: input.eventReceivedAt,
        startedAt,
        verifiedAt: new Date().toISOString(),
      }));
      return { verifiedAt: row.verifiedAt ?? new Date().toISOString(), detail: `ready: each pipeline run gets its own credential, delivered under ${input.deliverTo.system}:${input.deliverTo.path}/<runId>` };
    },
  };
}

export type DeployActivities = ReturnType<typeof createDeployActivities>;
