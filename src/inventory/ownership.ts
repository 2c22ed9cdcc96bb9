import type { DiscoveredIdentity } from '../connectors/connector';
import type { OwnershipRule } from '../connectors/connector-config';

/** What a connector's ownership rules say about one discovered identity: the first matching rule per field wins. */
export function ruleAttribution(rules: readonly OwnershipRule[], identity: DiscoveredIdentity): { owner?: string; workload?: string } {
  let owner: string | undefined;
  let workload: string | undefined;
  for (const rule of rules) {
    if (!matches(rule, identity)) continue;
    owner ??= rule.owner;
    workload ??= rule.workload;
    if (owner !== undefined && workload !== undefined) break;
  }
  return { ...(owner !== undefined ? { owner } : {}), ...(workload !== undefined ? { workload } : {}) };
}

function matches(rule: OwnershipRule, identity: DiscoveredIdentity): boolean {
  if (rule.namePrefix !== undefined) return identity.name.startsWith(rule.namePrefix);
  if (rule.attribute === undefined) return false;
  const values = attributeValues(identity, rule.attribute);
  return rule.equals === undefined ? values.length > 0 : values.includes(rule.equals);
}

/** LDAP attribute names are case-insensitive; IAM tag keys are matched the same way, which no sane tagging relies on. */
function attributeValues(identity: DiscoveredIdentity, name: string): string[] {
  const lower = name.toLowerCase();
  for (const [key, values] of Object.entries(identity.attributes ?? {})) if (key.toLowerCase() === lower) return values;
  return [];
}

/** The attribute names an instance's rules read: what its discovery must fetch, and nothing else. */
export function ruleAttributes(rules: readonly OwnershipRule[] | undefined): string[] {
  return [...new Set((rules ?? []).flatMap((r) => (r.attribute === undefined ? [] : [r.attribute])))];
}
