import type { IdentityRef } from '../../actions/identity-action';
import type { ConnectorGrammar, FieldProblem, ParsedGrant } from '../connector';

/**
 * The part of SCIM 2.0 (RFC 7643) the gateway speaks: a User's `userName`, and membership of a Group named by its
 * `displayName`. SCIM itself allows almost any text in both; the gateway accepts only characters that need no
 * escaping in a filter literal, a URL or a log line. Values still travel as escaped filter literals (scim-filter.ts),
 * but this charset is what keeps them safe on providers whose filter parser mishandles escapes — SCIMMY 1.3.5, for
 * one, answers 400 to `"x\"y"` instead of matching the literal.
 */
export const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;
/** Words of letters, digits, `.`, `_`, `-`, separated by single spaces ("Finance Readers"). */
export const GROUP_NAME = /^(?=.{1,128}$)[A-Za-z0-9][A-Za-z0-9._-]*(?: [A-Za-z0-9._-]+)*$/;
const GRANT = /^group=(.*)$/i;

export interface ScimGrammarPolicy {
  /** userNames the gateway must never touch; compared without case, as SCIM compares userName (caseExact=false). */
  protectedAccounts: string[];
}

export class ScimGrammar implements ConnectorGrammar {
  readonly type = 'scim';
  private readonly protectedAccounts: Set<string>;

  constructor(policy: ScimGrammarPolicy) {
    this.protectedAccounts = new Set(policy.protectedAccounts.map((a) => a.toLowerCase()));
  }

  validateIdentity(identity: IdentityRef): FieldProblem[] {
    const problems: FieldProblem[] = [];
    if (!USER_NAME.test(identity.name)) {
      problems.push({
        path: 'identity.name',
        message: 'must be a SCIM userName of 1-128 ASCII letters, digits, ".", "_", "@", "+" or "-", starting with a letter or digit',
      });
    } else if (this.protectedAccounts.has(identity.name.toLowerCase())) {
      problems.push({ path: 'identity.name', message: `'${identity.name}' is a protected account and cannot be changed by a ticket` });
    }
    if (identity.host !== undefined) problems.push({ path: 'identity.host', message: 'SCIM users have no host part; leave it out' });
    return problems;
  }

  parseGrant(text: string): ParsedGrant | { problem: string } {
    const match = GRANT.exec(text.trim());
    if (!match) return { problem: "must look like 'group=<group displayName>', e.g. 'group=Finance Readers'" };
    const name = match[1] ?? '';
    if (!GROUP_NAME.test(name)) {
      return { problem: `group name '${name.slice(0, 70)}' must be 1-128 characters: words of letters, digits, ".", "_" or "-" separated by single spaces` };
    }
    return { canonical: [grantFor(name)] };
  }
}

/** The canonical text for membership of a group, as inspect() reports it. */
export function grantFor(displayName: string): string {
  return `group=${displayName}`;
}

/** The group displayName in a canonical grant. */
export function groupOfGrant(canonical: string): string {
  return canonical.slice('group='.length);
}
