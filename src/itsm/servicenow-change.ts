import { createHash } from 'node:crypto';
import { z } from 'zod';
import { type IdentityAction, identityActionsDocumentSchema, ttlMs } from '../actions/identity-action';
import type { GrammarRegistry } from '../connectors/registry';
import { canonicalJson } from '../evidence/canonical-json';
import { type FieldIssue, formatPath } from '../errors';
import type { PlannedAction } from '../../workflows/change-types';

/** Table API values are strings; reference fields are {link, value}. */
const reference = z.object({ link: z.string().optional(), value: z.string() }).passthrough();
const STATES = ['-5', '-4', '-3', '-2', '-1', '0', '3', '4'] as const;

export const changeRecordSchema = z
  .object({
    sys_id: z.string().regex(/^[0-9a-f]{32}$/, 'must be a 32-character lower-case hex sys_id'),
    number: z.string().regex(/^[A-Z]{2,8}\d{4,12}$/, 'must be a ticket number such as CHG0030001'),
    sys_mod_count: z.string().regex(/^\d{1,9}$/, 'must be a non-negative integer string'),
    state: z.enum(STATES, { errorMap: () => ({ message: `must be one of ${STATES.join(', ')}` }) }),
    approval: z.string().max(40).default(''),
    type: z.string().max(40).default(''),
    u_identity_actions: z.string().max(100_000).default(''),
    assignment_group: z.union([reference, z.literal('')]).optional(),
    requested_by: z.union([reference, z.literal('')]).optional(),
  })
  .passthrough();

export type ChangeRecord = z.infer<typeof changeRecordSchema>;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; issues: FieldIssue[] };

/** Validates the record and its identity actions; every problem is reported with its field path. */
export function parseChangeRecord(body: unknown, grammars: GrammarRegistry): ParseResult<{ record: ChangeRecord; actions: PlannedAction[] }> {
  const parsed = changeRecordSchema.safeParse(body);
  if (!parsed.success) {
    return { ok: false, issues: parsed.error.issues.map((i) => ({ path: formatPath(i.path) || '(body)', message: i.message })) };
  }
  const record = parsed.data;
  const actions = parseIdentityActions(record.u_identity_actions, grammars);
  if (!actions.ok) return actions;
  return { ok: true, value: { record, actions: actions.value } };
}

export function parseIdentityActions(text: string, grammars: GrammarRegistry): ParseResult<PlannedAction[]> {
  const base = 'u_identity_actions';
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
