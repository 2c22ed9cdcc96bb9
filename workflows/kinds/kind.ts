import type { ChangeState, KindClosureRules, StepState, TicketRef } from '../../src/change';
import type { TicketUpdate } from '../../src/itsm/source';
import type { Targets, Tickets } from '../activity-proxies';

/** What a kind's workflow code gets for one step. */
export interface KindContext {
  /** The ticket's evidence key (`source:key`). */
  key: string;
  ref: TicketRef;
  state: ChangeState;
  step: StepState;
  /** Asks the loop to look again (re-evaluate the verdict, publish the view). */
  touch: () => void;
  targets: Targets;
  tickets: Tickets;
  /**
   * Writes a work note to the ticket once (its marker makes it idempotent). Depending on the workflow's version it is
   * posted at once or left for the loop's next write-back; either way a note that cannot be written blocks closure.
   */
  note(marker: string, text: string): Promise<void>;
  /**
   * Records another kind of ticket update (a property, a transition, an attachment) for the ticket outbox, which
   * delivers it once, before the gate. Absent on runs started before the outbox: they cannot send such updates.
   */
  update?(update: TicketUpdate): void;
  /** Whether this run has `patch`: `patched(patch)`, asked only on a run that started before the newest patch. */
  since(patch: string): boolean;
}

/** What a kind that takes events of its own (a deploy's pipeline runs) is given once, when the workflow starts. */
export interface KindHost {
  key: string;
  state: ChangeState;
  contextFor(step: StepState): KindContext;
  touch: () => void;
}

/**
 * The workflow half of an action kind: when its step may start, how it runs, what keeps closure blocked once it is
 * verified, and (for a kind that grants) how it is undone. Deterministic: it runs inside the workflow bundle.
 */
export interface WorkflowKind extends KindClosureRules {
  kind: string;
  /** `at-once`: whatever the ticket's phase (revoke early). `when-authorized`: once the change is in Implement (grant late). */
  starts: 'at-once' | 'when-authorized';
  /** Runs the step to `verified` or `failed`, evidence first; resolves when the kind is done with it. */
  run(ctx: KindContext): Promise<void>;
  /** Sets the kind's own update handlers (with validators) on the ticket's workflow; called once per run of it. */
  install?(host: KindHost): void;
  /** The compensation of a verified step: run when the ticket is cancelled, newest verification first. */
  undo?: {
    /** Whether this verified step still has something to undo. */
    pending(step: StepState): boolean;
    /** Marks the undo as started (synchronously, before any await), so that no one starts it twice. */
    begin(step: StepState): void;
    /** Reverses the step, read back and evidenced like any step; never rejects for a target refusal. */
    run(ctx: KindContext): Promise<void>;
  };
}
