import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { PlannedAction } from '../change/ticket';
import type { GrammarEntry, GrammarRegistry } from '../connectors/registry';
import { canonicalJson, unpairedSurrogateAt } from '../evidence/canonical-json';
import { type FieldIssue, formatPath } from '../errors';
import { edgeKind, type PlanContext, type TicketContext } from '../kinds/registry';
import { type IdentityAction, identityActionsDocumentSchema } from './identity-action';

export type ParseResult<T> = { ok: true; value: T } | { ok: false; issues: FieldIssue[] };

/**
 * Validates a ticket's identity-actions text against the connectors' grammars and plans it; every problem is
 * reported with its path, starting at `field` (the source's name for the field, e.g. `u_identity_actions`).
 */
export function parseIdentityActions(text: string, grammars: GrammarRegistry, field: string, ticket?: TicketContext): ParseResult<PlannedAction[]> {
  const base = field;
  if (text.trim() === '') return { ok: true, value: [] };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, issues: [{ path: base, message: `is not valid JSON (${(err as Error).message})` }] };
  }
  // JSON.parse accepts "\ud800"; evidence (RFC 8785) cannot hold it, so it is refused here, naming where it is.
  const unpaired = unpairedSurrogateAt(json);
  if (unpaired) return { ok: false, issues: [{ path: formatPath([base, ...unpaired]), message: 'must not contain an unpaired UTF-16 surrogate (\\ud800-\\udfff alone)' }] };
  const doc = identityActionsDocumentSchema.safeParse(json);
  if (!doc.success) {
    // A union reports one issue list per branch; show the array branch's issues (the common form) unless the
    // sender clearly used the versioned envelope.
    const issues = flattenUnionIssues(doc.error, Array.isArray(json));
    return { ok: false, issues: issues.map((i) => ({ path: formatPath([base, ...i.path]), message: i.message })) };
  }
  const data = doc.data as IdentityAction[] | { actions: IdentityAction[] };
  const list: IdentityAction[] = Array.isArray(data) ? data : data.actions;
  const prefix = Array.isArray(data) ? [base] : [base, 'actions'];
  const issues: FieldIssue[] = [];
  const planned: PlannedAction[] = [];
  list.forEach((action, index) => {
    const at = (rel: string) => `${formatPath([...prefix, index])}.${rel}`;
    const kind = edgeKind(action.kind);
    // The schema only lets registered kinds through.
    if (!kind) throw new Error(`action kind '${action.kind}' passed the schema but is not registered`);
    const actionId = createHash('sha256').update(canonicalJson(action)).digest('hex').slice(0, 16);
    const issue = (rel: string, message: string) => issues.push({ path: at(rel), message });
    let entry: GrammarEntry | undefined;
    // An action without a system selects its identities through the inventory (its kind checks that it may).
    if (typeof action.system === 'string') {
      entry = grammars.get(action.system);
      if (!entry) {
        issues.push({ path: at('system'), message: `unknown system '${action.system.slice(0, 100)}' (configured: ${grammars.names().join(', ')})` });
        return;
      }
      if (action.identity) for (const p of entry.grammar.validateIdentity(action.identity)) issues.push({ path: at(p.path), message: p.message });
    }
    const plan = kind.plan(action, planContext(action.kind, { actionId, entry, grammars, ticket, issue }));
    // Every kind carries them (commonFields); added here, once, so that no kind has to copy them into its plan.
    planned.push({ ...plan, ...attribution(action) });
  });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: planned };
}

/** The context a kind plans in; `entry` exists only for an action that names its system. */
function planContext(kind: string, ctx: Omit<PlanContext, 'entry'> & { entry: GrammarEntry | undefined }): PlanContext {
  const { entry, ...rest } = ctx;
  return Object.defineProperty(rest, 'entry', {
    get(): GrammarEntry {
      if (!entry) throw new Error(`action kind '${kind}' asked for the system of an action that names none`);
      return entry;
    },
  }) as PlanContext;
}

function attribution(action: IdentityAction): { owner?: string; workload?: string } {
  return {
    ...(typeof action.owner === 'string' ? { owner: action.owner } : {}),
    ...(typeof action.workload === 'string' ? { workload: action.workload } : {}),
  };
}

function flattenUnionIssues(error: z.ZodError, preferArray: boolean): z.ZodIssue[] {
  const out: z.ZodIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === z.ZodIssueCode.invalid_union) {
      const branch = issue.unionErrors[preferArray ? 0 : 1] ?? issue.unionErrors[0];
      if (branch) out.push(...branch.issues);
    } else out.push(issue);
  }
  return out;
}
