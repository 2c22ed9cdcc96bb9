import { ExceptionStore } from './exceptions/exception-store';
import type { NotifySettings } from './exceptions/notify';
import { hostname } from 'node:os';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import {
  createCertificationActivities, createClosureActivities, createConnectorActivities, createDecisionActivities, createDeployActivities, createDriftActivities, createExceptionActivities, createInventoryActivities,
  createLeakActivities, createSelectionActivities, createTicketActivities, createTicketLifecycleActivities,
} from '../activities';
import { keepAlive } from '../activities/keep-alive';
import type { ClosureVerdictStore } from './closure/verdict-store';
import type { ConnectorRegistry } from './connectors/registry';
import type { EvidenceStore } from './evidence/evidence-store';
import { DriftStore } from './drift/drift-store';
import { reassignCertifier, type StartCertification } from '../activities/certification-activities';
import { CertificationStore } from './certification/certification-store';
import { InventoryStore } from './inventory/inventory-store';
import type { DeployRunReply, DeployRunRequest } from './kinds/deploy/run';
import type { Policy } from './policy/policy';
import { writeBacks } from './itsm/registry';
import type { BackoffPolicy } from './itsm/retry-timing';
import type { ServiceNowClient } from './itsm/servicenow/servicenow-client';
import { activityMetrics } from './metrics/activity-metrics';
import type { GatewayMetrics } from './metrics/metrics';
import type { Tracing } from './telemetry/tracing';
import { OpenTelemetryActivityInboundInterceptor, OpenTelemetryActivityOutboundInterceptor, makeWorkflowExporter } from '@temporalio/interceptors-opentelemetry/lib/worker';

export interface WorkerDeps {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  registry: ConnectorRegistry;
  evidence: EvidenceStore;
  /** Default: the inventory in the evidence's database, which it must be (one transaction writes both). */
  inventory?: InventoryStore;
  verdicts: ClosureVerdictStore;
  servicenow: ServiceNowClient;
  /** Ends a pipeline run whose credential leaked (the API's Temporal client); without it such a leak fails. */
  endRun?: (ticketKey: string, request: DeployRunRequest) => Promise<DeployRunReply>;
  /** Where emergency-exception escalations are announced (CHANGEGATE_NOTIFY_URL); unset, the ledger says so. */
  notify?: NotifySettings;
  /** Starts a certification item's workflow (the API's Temporal client); without it no trigger opens an item. */
  startCertification?: StartCertification;
  /** The governance policy: what discovery does with drift (report by default). */
  policy?: Policy;
  /** Clients of other ticket sources' write-backs, by source name. */
  sourceClients?: Readonly<Record<string, unknown>>;
  /** The ticket outbox's back-off between delivery attempts (config CHANGEGATE_WRITEBACK_MAX_BACKOFF). */
  writeBackBackoff?: BackoffPolicy;
  /** Sticky-cache bound (config TEMPORAL_MAX_CACHED_WORKFLOWS). */
  maxCachedWorkflows?: number;
  /** A pre-built bundle (production, tests); otherwise the workflows are bundled from source at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Worker interceptors (tests use them to lose an activity's answer, as a network fault would). */
  interceptors?: WorkerOptions['interceptors'];
  /** Where this process counts step outcomes, latencies and connector retries (CHANGEGATE_METRICS_PORT). */
  metrics?: GatewayMetrics;
  /**
   * Traces through workflows and activities (OTEL_EXPORTER_OTLP_ENDPOINT). A pre-built bundle must have been built
   * with WORKFLOW_TRACING_MODULE among its interceptor modules.
   */
  tracing?: Tracing;
}

/** The SDK's workflow interceptors that continue a caller's trace inside the workflow and into its activities. */
export const WORKFLOW_TRACING_MODULE = require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

export function workerActor(): string {
  return `changegate-worker@${hostname()}`;
}

/** A reviewer rule that names a connector which cannot say who a manager is would fail every item: refused at start. */
export function checkCertificationDirectory(policy: Policy | undefined, registry: Pick<ConnectorRegistry, 'capabilities'>): void {
  const directory = policy?.certification?.reviewer.manager?.directory;
  if (directory !== undefined && !registry.capabilities(directory).directory) {
    throw new Error(`policy certification.reviewer.manager.directory: connector '${directory}' is not a directory of people (an ldap connector is)`);
  }
}

export async function createWorker(deps: WorkerDeps): Promise<Worker> {
  checkCertificationDirectory(deps.policy, deps.registry);
  const inventory = deps.inventory ?? new InventoryStore(deps.evidence.dataSource);
  const writeBackFor = writeBacks({ servicenow: deps.servicenow, ...deps.sourceClients });
  const drift = new DriftStore(deps.evidence.dataSource);
  const activities = {
    // Target calls heartbeat, so a worker lost mid-call is noticed within the targets (or deploy) proxy's heartbeat timeout.
    ...keepAlive(createConnectorActivities({ registry: deps.registry, evidence: deps.evidence, actor: workerActor(), inventory })),
    ...keepAlive(createDeployActivities({ registry: deps.registry, evidence: deps.evidence, actor: workerActor(), inventory })),
    ...createInventoryActivities({ registry: deps.registry, evidence: deps.evidence, actor: workerActor(), inventory, drift, ...(deps.policy ? { policy: deps.policy } : {}) }),
    ...createDriftActivities({
      registry: deps.registry, evidence: deps.evidence, inventory, drift, ...(deps.policy ? { policy: deps.policy } : {}), writeBackFor, actor: workerActor(),
      latestView: async (ticketKey) => {
        const [source = '', key = ''] = ticketKey.split(/:(.*)/s);
        return (await deps.verdicts.latest(source, key))?.view ?? null;
      },
    }),
    ...createSelectionActivities({ registry: deps.registry, evidence: deps.evidence, actor: workerActor(), inventory, onReassigned: reassignCertifier(deps.policy, deps.startCertification) }),
    // Heartbeating too: a verified mover's or rotation's note waits on its certification trigger (certifyStep), so a
    // worker lost mid-trigger must be noticed in seconds, not after the certifications proxy's start-to-close timeout.
    ...keepAlive(createCertificationActivities({
      registry: deps.registry, evidence: deps.evidence, inventory, certifications: new CertificationStore(deps.evidence.dataSource), drift, writeBackFor, actor: workerActor(),
      ...(deps.policy ? { policy: deps.policy } : {}), ...(deps.startCertification ? { startCertification: deps.startCertification } : {}),
      managerOf: (directory, owner) => deps.registry.directory(directory).managerOf(owner), ...(deps.notify ? { notify: deps.notify } : {}),
    })),
    ...createLeakActivities({ evidence: deps.evidence, writeBackFor, actor: workerActor(), ...(deps.endRun ? { endRun: deps.endRun } : {}) }),
    // Heartbeating too: the ticket outbox waits on its delivery, so a worker lost mid-delivery must be noticed in
    // seconds, not after the start-to-close timeout, or every later note and gate write waits that long.
    ...keepAlive(createTicketActivities({
      writeBackFor,
      evidence: deps.evidence,
      publishView: (ticketKey, version, view) => deps.verdicts.publish(ticketKey, version, view),
      ...(deps.writeBackBackoff ? { backoff: deps.writeBackBackoff } : {}),
    })),
    ...createTicketLifecycleActivities({ writeBackFor, evidence: deps.evidence }),
    ...createClosureActivities({ verdicts: deps.verdicts }),
    ...createDecisionActivities({ evidence: deps.evidence, actor: workerActor() }),
    ...createExceptionActivities({
      evidence: deps.evidence, exceptions: new ExceptionStore(deps.evidence.dataSource), registry: deps.registry, actor: workerActor(), ...(deps.notify ? { notify: deps.notify } : {}),
    }),
  };
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: deps.taskQueue,
    activities,
    maxCachedWorkflows: deps.maxCachedWorkflows ?? 250,
    ...(deps.interceptors || deps.metrics || deps.tracing ? { interceptors: withTracing(withMetrics(deps.interceptors, deps.metrics), deps.tracing) } : {}),
    ...(deps.tracing ? { sinks: { exporter: makeWorkflowExporter(deps.tracing.processor, deps.tracing.resource) } } : {}),
    ...(deps.workflowBundle ? { workflowBundle: deps.workflowBundle } : { workflowsPath: require.resolve('../workflows') }),
  });
}

function withMetrics(interceptors: WorkerOptions['interceptors'], metrics: GatewayMetrics | undefined): WorkerOptions['interceptors'] {
  if (!metrics) return interceptors;
  return { ...interceptors, activity: [activityMetrics(metrics), ...(interceptors?.activity ?? [])] };
}

function withTracing(interceptors: WorkerOptions['interceptors'], tracing: Tracing | undefined): WorkerOptions['interceptors'] {
  if (!tracing) return interceptors;
  const { tracer } = tracing;
  return {
    ...interceptors,
    activity: [
      (ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx, { tracer }), outbound: new OpenTelemetryActivityOutboundInterceptor(ctx) }),
      ...(interceptors?.activity ?? []),
    ],
    workflowModules: [...(interceptors?.workflowModules ?? []), WORKFLOW_TRACING_MODULE],
  };
}
