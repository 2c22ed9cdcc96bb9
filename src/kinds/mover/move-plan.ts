import type { ConnectorGrammar } from '../../connectors/connector';

/**
 * What a move does to one identity, planned from a read-back of the target: the grants it keeps, removes and adds,
 * and those it leaves alone because the connector does not manage them (its grammar does not accept them).
 */
export interface MovePlan {
  kept: string[];
  remove: string[];
  add: string[];
  /** Held, but outside what the connector manages: reported, never touched. */
  unmanaged: string[];
}

/** True when `grant`, as the target reports it, is one the connector grants and takes back. */
export function isManaged(grammar: ConnectorGrammar, grant: string): boolean {
  if (grammar.manages) return grammar.manages(grant);
  const parsed = grammar.parseGrant(grant);
  return !('problem' in parsed) && parsed.canonical.includes(grant);
}

export function planMove(held: readonly string[], wanted: readonly string[], managed: (grant: string) => boolean): MovePlan {
  const want = new Set(wanted);
  const have = new Set(held);
  const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();
  return {
    kept: sorted(held.filter((g) => want.has(g))),
    remove: sorted(held.filter((g) => !want.has(g) && managed(g))),
    add: sorted(wanted.filter((g) => !have.has(g))),
    unmanaged: sorted(held.filter((g) => !want.has(g) && !managed(g))),
  };
}

/** The plan in words, for evidence and the ticket's work note. */
export function describeMove(plan: MovePlan): string {
  const list = (xs: string[]) => (xs.length === 0 ? 'none' : xs.join(', '));
  const parts = [`kept: ${list(plan.kept)}`, `removed: ${list(plan.remove)}`];
  if (plan.add.length > 0) parts.push(`added: ${list(plan.add)}`);
  if (plan.unmanaged.length > 0) parts.push(`not managed by changegate, left untouched: ${list(plan.unmanaged)}`);
  return parts.join('; ');
}
