import { z } from 'zod';
import { parseIsoDuration } from '../actions/iso-duration';
import type { GrammarEntry } from '../connectors/registry';

/** Beyond any sane policy, and far inside what a Date and a Temporal timer can hold. Policies cap lower. */
const TTL_CEILING_MS = 100 * 365 * 86_400_000;

export const ttl = z.string().max(64).superRefine((text, ctx) => {
  const ms = parseIsoDuration(text);
  if (ms === null) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `'${text.slice(0, 40)}' is not an ISO-8601 duration (e.g. PT8H)` });
  else if (ms < 1000) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be at least one second (PT1S)' });
  else if (ms > TTL_CEILING_MS) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be at most 100 years (P100Y)' });
});

/** Ticket-scoped access: the grant ends when the ticket closes, or at the change window's end (ServiceNow `end_date`). */
export const until = z.enum(['ticket-closed', 'window-end'], { errorMap: () => ({ message: "must be 'ticket-closed' or 'window-end'" }) });

export function ttlMs(action: { ttl?: string }): number | undefined {
  return action.ttl === undefined ? undefined : (parseIsoDuration(action.ttl) ?? undefined);
}

/** What a kind that grants carries beyond system and identity: the grants, how long they last, which are privileged. */
export interface GrantPlan {
  /** Canonical text, sorted and de-duplicated. */
  grants: string[];
  ttlMs?: number;
  ttl?: string;
  until?: 'ticket-closed' | 'window-end';
  /** Those the governance policy marks privileged: they wait for a change manager's decision. */
  privileged?: string[];
  /**
   * Neither a ttl nor an `until`: standing access, which the policy allows for every grant's class and the identity's
   * type, owned by the action's owner. Its cleanup path is the owner's leaver and certification.
   */
  standing?: true;
  /**
   * A mover's wanted grants with no cleanup path, each with the reason (no `grant`: the reason holds for all). A mover
   * learns what it adds only from its read-back, so it is refused then, and only if it would add one of them.
   */
  noCleanupPath?: Array<{ grant?: string; reason: string }>;
}

/** Where a grant with no cleanup path is refused: at planning (a joiner), or once a mover's read-back says it would add it. */
export type NoCleanupPath = 'refuse-at-planning' | 'refuse-when-adding';

/**
 * Plans the grants of a joiner or mover: each parsed into the target's canonical text, the ttl checked against the
 * connector's `maxTtl` and the governance policy's privilege classes, and grants with no ttl and no `until` checked
 * against the standing access the policy allows. Each problem is reported on its field.
 */
export function planGrants(
  action: { system: string; identity: { type: string }; owner?: string; grants: string[]; ttl?: string; until?: 'ticket-closed' | 'window-end' },
  { entry, issue }: { entry: GrammarEntry; issue: (path: string, message: string) => void },
  noCleanupPath: NoCleanupPath = 'refuse-at-planning',
): GrantPlan {
  const canonical: string[] = [];
  // Where each canonical grant came from, for a refusal on its own field.
  const fieldOf = new Map<string, string>();
  action.grants.forEach((g, gi) => {
    const parsed = entry.grammar.parseGrant(g);
    if ('problem' in parsed) issue(`grants[${gi}]`, parsed.problem);
    else {
      canonical.push(...parsed.canonical);
      for (const c of parsed.canonical) if (!fieldOf.has(c)) fieldOf.set(c, `grants[${gi}]`);
    }
  });
  const grants = [...new Set(canonical)].sort();
  const ms = ttlMs(action);
  if (ms !== undefined && entry.policy.maxTtlMs !== undefined && ms > entry.policy.maxTtlMs) {
    issue('ttl', `exceeds the policy maximum for ${action.system}`);
  } else if (ms !== undefined) {
    for (const grant of grants) {
      const cls = entry.policy.classOf(grant);
      if (cls && ms > cls.maxTtlMs) {
        issue('ttl', `${action.ttl} exceeds ${cls.maxTtl}, the longest the policy allows for ${cls.name} grants on ${action.system} (${grant})`);
        break;
      }
    }
  }
  const problems = ms === undefined && action.until === undefined && grants.length > 0 ? standingProblems(action, grants, entry, fieldOf) : undefined;
  if (noCleanupPath === 'refuse-at-planning') for (const p of problems ?? []) issue(p.path, p.reason);
  const standing = problems !== undefined && problems.length === 0;
  const deferred = noCleanupPath === 'refuse-when-adding' && problems !== undefined && problems.length > 0;
  const privileged = grants.filter((g) => entry.policy.isPrivileged(g));
  return {
    grants,
    ttlMs: ms,
    ttl: action.ttl,
    ...(action.until ? { until: action.until } : {}),
    ...(privileged.length > 0 ? { privileged } : {}),
    ...(standing ? { standing: true as const } : {}),
    ...(deferred ? { noCleanupPath: problems.map(({ grant, reason }) => ({ ...(grant ? { grant } : {}), reason })) } : {}),
  };
}

/**
 * A grant with neither a ttl nor an `until` has no end of its own. It is accepted only as standing access: its
 * privilege class allows standing access for the identity's type, and the action names the owner the inventory
 * records (the owner's leaver revokes it, certification reviews it). Anything else is a problem, on its field, saying
 * what would make it acceptable.
 */
function standingProblems(
  action: { system: string; identity: { type: string }; owner?: string },
  grants: string[],
  entry: GrammarEntry,
  fieldOf: Map<string, string>,
): Array<{ path: string; grant?: string; reason: string }> {
  const type = action.identity.type;
  const problems: Array<{ path: string; grant?: string; reason: string }> = [];
  // In the order the action lists them.
  for (const grant of [...fieldOf.keys()].filter((g) => grants.includes(g))) {
    const cls = entry.policy.classOf(grant);
    if (cls?.standing?.identityTypes.includes(type)) continue;
    const why = !cls
      ? `no privilege class on ${action.system} covers it`
      : cls.standing
        ? `the policy allows standing access to ${cls.name} grants only for ${cls.standing.identityTypes.join(', ')} identities`
        : `the policy allows no standing access to ${cls.name} grants`;
    problems.push({
      path: fieldOf.get(grant) as string,
      grant,
      reason: `${grant} (${cls ? `class ${cls.name}` : 'no class'}) has no cleanup path: ${why}; give the action a ttl or an until, or use a policy that allows standing access to it for ${type} identities`,
    });
  }
  if (problems.length === 0 && action.owner === undefined) {
    problems.push({
      path: 'owner',
      reason: "standing access (no ttl, no until) needs an owner: the inventory records it so that the owner's leaver revokes it and certification reviews it; name one, or give the action a ttl or an until",
    });
  }
  return problems;
}
