import { z } from 'zod';
import type { PlannedAction } from '../change/ticket';
import type { GrammarEntry, GrammarRegistry } from '../connectors/registry';
import { decommissionEdge } from './decommission/edge';
import { deployEdge } from './deploy/edge';
import { joinerEdge } from './joiner/edge';
import { leaverEdge } from './leaver/edge';
import { moverEdge } from './mover/edge';
import { rotateEdge } from './rotate/edge';

/** What planning one action may consult and where it reports problems (paths relative to the action). */
export interface PlanContext {
  actionId: string;
  /**
   * The action's own system, already known to exist and to accept the identity. Only for an action that names a
   * system: asking for it on one that selects through the inventory (a decommission, a leaver by owner) throws.
   */
  entry: GrammarEntry;
  grammars: GrammarRegistry;
  /** What the ticket itself says that an action may default to (its configuration item). */
  ticket?: TicketContext;
  issue(path: string, message: string): void;
}

export interface TicketContext {
  /** The configuration item the change is about (ServiceNow `cmdb_ci`, by its display value). */
  configurationItem?: string;
  /** An emergency change: the policy may let some actions run before it is authorized. */
  emergency?: boolean;
}

/**
 * The edge half of an action kind: its spec-v1 schema (a strict object whose `kind` is a literal) and how a parsed
 * action is checked against the connectors and planned into a step. The workflow half lives in workflows/kinds/.
 */
export interface EdgeKind<A extends { kind: string } = { kind: string }> {
  kind: string;
  schema: z.ZodDiscriminatedUnionOption<'kind'>;
  plan(action: A, ctx: PlanContext): PlannedAction;
}

const kinds = new Map<string, EdgeKind>();
let cachedSchema: z.ZodTypeAny | undefined;

/** Adds a kind; its name must be new. */
export function register<A extends { kind: string }>(kind: EdgeKind<A>): void {
  if (kinds.has(kind.kind)) throw new Error(`action kind '${kind.kind}' is already registered`);
  kinds.set(kind.kind, kind as unknown as EdgeKind);
  cachedSchema = undefined;
}

export function edgeKind(kind: string): EdgeKind | undefined {
  return kinds.get(kind);
}

export function kindNames(): string[] {
  return [...kinds.keys()];
}

/** Kinds the spec names for later; refused with a message that says so. None are left. */
export const PLANNED_KINDS: readonly string[] = [];

/** One action of any registered kind, dispatched on `kind`. */
export function actionSchema(): z.ZodTypeAny {
  cachedSchema ??= z.discriminatedUnion('kind', [...kinds.values()].map((k) => k.schema) as [z.ZodDiscriminatedUnionOption<'kind'>, ...z.ZodDiscriminatedUnionOption<'kind'>[]], {
    errorMap: (issue, ctx) =>
      issue.code === z.ZodIssueCode.invalid_union_discriminator
        ? { message: `kind must be one of ${kindNames().join(', ')} (spec v1${PLANNED_KINDS.length > 0 ? `; ${PLANNED_KINDS.join(', ')} are not supported yet` : ''})` }
        : { message: ctx.defaultError },
  });
  return cachedSchema;
}

// One line per kind.
register(joinerEdge);
register(leaverEdge);
register(moverEdge);
register(rotateEdge);
register(deployEdge);
register(decommissionEdge);
