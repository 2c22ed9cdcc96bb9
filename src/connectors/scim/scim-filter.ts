/**
 * Builds SCIM filter expressions and PatchOp paths (RFC 7644 §3.4.2.2, §3.5.2). A value is only ever placed in a
 * filter as a string literal, and a literal is JSON's string grammar, which the RFC names for `compValue`:
 * JSON.stringify quotes it and escapes `"`, `\` and control characters. Attribute names come from a fixed list.
 */
export type FilterAttribute = 'userName' | 'displayName' | 'members.value' | 'value';

export function scimStringLiteral(value: string): string {
  return JSON.stringify(value);
}

export function eq(attribute: FilterAttribute, value: string): string {
  return `${attribute} eq ${scimStringLiteral(value)}`;
}

/** The PatchOp path of one member of a group: `members[value eq "<id>"]`. */
export function memberPath(memberId: string): string {
  return `members[${eq('value', memberId)}]`;
}
