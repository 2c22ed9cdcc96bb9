import type { GrammarEntry } from '../connectors/registry';

/**
 * The governance policy's limits on a kind that grants, checked at planning: a ttl no longer than the privilege
 * class of every grant allows. Each problem is reported on the field it is about.
 */
export function checkGrantLifetime(grants: string[], ttlMs: number | undefined, ttl: string | undefined, entry: GrammarEntry, system: string, issue: (path: string, message: string) => void): void {
  if (ttlMs === undefined) return;
  for (const grant of grants) {
    const cls = entry.policy.classOf(grant);
    if (cls && ttlMs > cls.maxTtlMs) {
      issue('ttl', `${ttl} exceeds ${cls.maxTtl}, the longest the policy allows for ${cls.name} grants on ${system} (${grant})`);
      return;
    }
  }
}
