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
}

/**
 * Plans the grants of a joiner or mover: each parsed into the target's canonical text, and the ttl checked against
 * the connector's `maxTtl` and the governance policy's privilege classes. Each problem is reported on its field.
 */
export function planGrants(
  action: { system: string; grants: string[]; ttl?: string; until?: 'ticket-closed' | 'window-end' },
  { entry, issue }: { entry: GrammarEntry; issue: (path: string, message: string) => void },
): GrantPlan {
  const canonical: string[] = [];
  action.grants.forEach((g, gi) => {
    const parsed = entry.grammar.parseGrant(g);
    if ('problem' in parsed) issue(`grants[${gi}]`, parsed.problem);
    else canonical.push(...parsed.canonical);
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
  const privileged = grants.filter((g) => entry.policy.isPrivileged(g));
  return {
    grants,
    ttlMs: ms,
    ttl: action.ttl,
    ...(action.until ? { until: action.until } : {}),
    ...(privileged.length > 0 ? { privileged } : {}),
  };
}
