import type { Tracer } from '@opentelemetry/api';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry/lib/client';
import { randomUUID } from 'node:crypto';
import type { IdentityRef } from '../actions/identity-action';
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { ChangeWorkflowInput } from '../../workflows/change-types';
import type { ChangeState } from '../change/change-state';
import { type SourceName, type TicketSnapshot, workflowIdFor } from '../change/ticket';
import type { InventoryReport, InventoryScanInput } from '../inventory/inventory';
import { DEPLOY_RUN_UPDATE, type DeployRunReply, type DeployRunRequest } from '../kinds/deploy/run';
import { type LeakReport, leakKey } from '../leaks/leak-report';
import { SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { type PollKind, lastPolls } from './poll-watch';
import { type CertificationRequest, certificationId, certificationWorkflowId } from '../certification/certification';

export class TicketFinalizedError extends Error {}

/** The API's view of Temporal: deliver a ticket update, read a ticket's status. */
export class ChangeWorkflows {
  constructor(
    readonly client: Client,
    private readonly taskQueue: string,
  ) {}

  /** With a tracer, each call carries the caller's trace into the workflow (W3C headers). */
  static async connect(address: string, namespace: string, taskQueue: string, tracer?: Tracer): Promise<ChangeWorkflows> {
    const connection = await Connection.connect({ address });
    const interceptors = tracer ? { workflow: [new OpenTelemetryWorkflowClientInterceptor({ tracer })] } : undefined;
    return new ChangeWorkflows(new Client({ connection, namespace, ...(interceptors ? { interceptors } : {}) }), taskQueue);
  }

  /** Signal-with-start: the first delivery starts the ticket's workflow, later ones reach the running one. */
  async deliver(input: ChangeWorkflowInput, snapshot: TicketSnapshot): Promise<string> {
    const workflowId = workflowIdFor(input.source, input.key);
    try {
      await this.client.workflow.signalWithStart('changeWorkflow', {
        workflowId,
        taskQueue: this.taskQueue,
        args: [input],
        signal: 'ticketUpdated',
        signalArgs: [snapshot],
        // A finished ticket is not restarted by a late delivery.
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        typedSearchAttributes: [
          { key: SEARCH_ATTRIBUTES.ticket, value: input.key },
          { key: SEARCH_ATTRIBUTES.source, value: input.source },
          { key: SEARCH_ATTRIBUTES.gate, value: 'blocked' },
        ],
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new TicketFinalizedError(`the workflow for ${input.key} has already finished`, { cause: err });
      }
      throw err;
    }
    return workflowId;
  }

  /** When Temporal last saw any worker poll this task queue, for workflow and for activity tasks. */
  async lastPolls(): Promise<Record<PollKind, Date | null>> {
    return lastPolls(this.client, this.taskQueue);
  }

  /** Null when the ticket was never seen. */
  async status(source: SourceName, key: string): Promise<ChangeState | null> {
    try {
      return await this.client.workflow.getHandle(workflowIdFor(source, key)).query<ChangeState>('status');
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  /** Runs one inventory scan on the worker (which holds the target credentials) and waits for its report. */
  async scanInventory(input: InventoryScanInput): Promise<InventoryReport> {
    return this.client.workflow.execute('inventoryWorkflow', {
      workflowId: `inventory-${input.scanId}`,
      taskQueue: this.taskQueue,
      args: [input],
      workflowExecutionTimeout: '10 minutes',
    });
  }

  /**
   * Starts the handling of a leaked-secret report, once per fingerprint: false when the same report (the same
   * fingerprint) was already taken, whether its handling still runs or has ended.
   */
  async reportLeak(report: LeakReport): Promise<{ workflowId: string; started: boolean }> {
    const workflowId = leakKey(report.fingerprint);
    try {
      await this.client.workflow.start('leakWorkflow', {
        workflowId,
        taskQueue: this.taskQueue,
        args: [report],
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      });
      return { workflowId, started: true };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return { workflowId, started: false };
      throw err;
    }
  }

  /**
   * Starts the workflow of the certification item an event asks for, once per item id (trigger, reference, identity):
   * false when that item was already opened, whether it is still open or decided.
   */
  async certify(request: CertificationRequest): Promise<{ id: string; started: boolean }> {
    const id = certificationId(request);
    try {
      await this.client.workflow.start('certificationWorkflow', {
        workflowId: certificationWorkflowId(id),
        taskQueue: this.taskQueue,
        args: [{ id, request }],
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      });
      return { id, started: true };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return { id, started: false };
      throw err;
    }
  }

  /** Sends a deploy run event to its ticket's workflow, whose update validator decides (`source:key` names the ticket). */
  async deployRun(ticketKey: string, request: DeployRunRequest): Promise<DeployRunReply> {
    const at = ticketKey.indexOf(':');
    const handle = this.client.workflow.getHandle(workflowIdFor(ticketKey.slice(0, at), ticketKey.slice(at + 1)));
    return handle.executeUpdate<DeployRunReply, [DeployRunRequest]>(DEPLOY_RUN_UPDATE, { args: [request] });
  }

  /** The identities' state on their targets now, read by a worker (it holds the credentials); 20 s at most. */
  async readBackIdentities(items: Array<{ system: string; identity: IdentityRef }>): Promise<Array<{ exists: boolean; locked?: boolean; grants: string[] } | { error: string }>> {
    return this.client.workflow.execute('exceptionReadBackWorkflow', {
      workflowId: `read-back-${randomUUID()}`,
      taskQueue: this.taskQueue,
      args: [items],
      workflowExecutionTimeout: '20 seconds',
    });
  }

  async ping(): Promise<void> {
    await this.client.connection.workflowService.getSystemInfo({});
  }

  async close(): Promise<void> {
    await this.client.connection.close();
  }
}
