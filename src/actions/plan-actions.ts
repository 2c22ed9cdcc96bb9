import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { PlannedAction } from '../change/ticket';
import type { GrammarRegistry } from '../connectors/registry';
import { canonicalJson } from '../evidence/canonical-json';
import { type FieldIssue, formatPath } from '../errors';
import { type IdentityAction, identityActionsDocumentSchema, ttlMs } from './identity-action';

export type ParseResult<T> = { ok: true; value: T } | { ok: false; issues: FieldIssue[] };

/**
 * Validates a ticket's identity-actions text against the connectors' grammars and plans it; every problem is
 * reported with its path, starting at `field` (the source's name for the field, e.g. `u_identity_actions`).
 */
export function parseIdentityActions(text: string, grammars: GrammarRegistry, field: string): ParseResult<PlannedAction[]> {
  const base = field;
  if (text.trim() === '') return { ok: true, value: [] };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, issues: [{ path: base, message: `is not valid JSON (${(err as Error).message})` }] };
  }
  const doc = identityActionsDocumentSchema.safeParse(json);
  if (!doc.success) {
    // A union reports one issue list per branch; show the array branch's issues (the common form) unless the
    // sender clearly used the versioned envelope.
    const issues = flattenUnionIssues(doc.error, Array.isArray(json));
    return { ok: false, issues: issues.map((i) => ({ path: formatPath([base, ...i.path]), message: i.message })) };
  }
  const list: IdentityAction[] = Array.isArray(doc.data) ? doc.data : doc.data.actions;
  const prefix = Array.isArray(doc.data) ? [base] : [base, 'actions'];
  const issues: FieldIssue[] = [];
  const planned: PlannedAction[] = [];
  list.forEach((action, index) => {
    const at = (rel: string) => `${formatPath([...prefix, index])}.${rel}`;
    const entry = grammars.get(action.system);
    if (!entry) {
      issues.push({ path: at('system'), message: `unknown system '${action.system.slice(0, 100)}' (configured: ${grammars.names().join(', ')})` });
      return;
    }
    for (const p of entry.grammar.validateIdentity(action.identity)) issues.push({ path: at(p.path), message: p.message });
    const actionId = createHash('sha256').update(canonicalJson(action)).digest('hex').slice(0, 16);
    if (action.kind === 'leaver') {
      planned.push({ actionId, kind: 'leaver', system: action.system, identity: action.identity });
      return;
    }
    if (action.kind === 'rotate') {
      if (!entry.capabilities.rotation) issues.push({ path: at('system'), message: `${action.system} has no credentials the gateway rotates` });
      const store = grammars.get(action.deliverTo.system);
      if (!store?.capabilities.secretSink || !store.grammar.validateSecretPath) {
        issues.push({ path: at('deliverTo.system'), message: `'${action.deliverTo.system.slice(0, 100)}' is not a configured secrets store` });
      } else {
        const problem = store.grammar.validateSecretPath(action.deliverTo.path);
        if (problem) issues.push({ path: at('deliverTo.path'), message: problem });
      }
      planned.push({ actionId, kind: 'rotate', system: action.system, identity: action.identity, deliverTo: action.deliverTo });
      return;
    }
    const grants: string[] = [];
    action.grants.forEach((g, gi) => {
      const parsedGrant = entry.grammar.parseGrant(g);
      if ('problem' in parsedGrant) issues.push({ path: at(`grants[${gi}]`), message: parsedGrant.problem });
      else grants.push(...parsedGrant.canonical);
    });
    const ms = ttlMs(action);
    if (ms !== undefined && entry.policy.maxTtlMs !== undefined && ms > entry.policy.maxTtlMs) {
      issues.push({ path: at('ttl'), message: `exceeds the policy maximum for ${action.system}` });
    }
    planned.push({ actionId, kind: 'joiner', system: action.system, identity: action.identity, grants: [...new Set(grants)].sort(), ttlMs: ms, ttl: action.ttl });
  });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: planned };
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
