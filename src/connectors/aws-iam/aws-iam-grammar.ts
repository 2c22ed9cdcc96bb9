import type { IdentityRef } from '../../actions/identity-action';
import type { ConnectorGrammar, FieldProblem, ParsedGrant } from '../connector';

/**
 * The part of AWS IAM's grammar the gateway speaks. An identity is an IAM user (`alice`) or an IAM role
 * (`role/deployer`); a grant is a managed-policy attachment (`policy=<ARN>`) or a group membership
 * (`group=<GroupName>`), each from the instance's allow-list. Names travel to AWS as form parameters, never
 * concatenated into anything; they are still held to AWS's own character set here, so a name that AWS would
 * refuse, or read differently, is refused before any request.
 */

/** AWS's user and role name pattern ([\w+=,.@-]{1,64}); JavaScript's `\w` is ASCII-only, as AWS's is. */
const IAM_NAME = /^[\w+=,.@-]{1,64}$/;
const GROUP_NAME = /^[\w+=,.@-]{1,128}$/;
/** `role/` marks a role: `/` is outside the name alphabet, so the prefix cannot be confused with a user name. */
const ROLE_PREFIX = 'role/';
const PARTITION = '(?:aws|aws-cn|aws-us-gov)';
/** Path segments; a segment of dots alone is refused: IAM reads it literally, a human might read it as "up". */
const SEGMENT = '(?!\\.{1,2}/)[\\w+=,.@-]{1,128}/';
const POLICY_PATH = `(?:${SEGMENT}){0,16}`;
/** arn:<partition>:iam::<aws|account>:policy/<path><name>: the shape ListAttachedUserPolicies reports. */
export const POLICY_ARN = new RegExp(`^arn:${PARTITION}:iam::(?:aws|\\d{12}):policy/${POLICY_PATH}[\\w+=,.@-]{1,128}$`);
/** An allow-list entry: an exact policy ARN, or a path prefix ending in `/*` (every policy under that path). */
export const POLICY_ARN_ALLOW_ENTRY = new RegExp(`^arn:${PARTITION}:iam::(?:aws|\\d{12}):policy/${POLICY_PATH}(?:[\\w+=,.@-]{1,128}|\\*)$`);
/** IAM paths: `/`-delimited segments; the managed path must name at least one segment. */
export const IAM_MANAGED_PATH = /^\/(?:(?!\.{1,2}\/)[\w+=,.@-]{1,64}\/){1,16}$/;

export type IamEntity = { kind: 'user'; name: string } | { kind: 'role'; name: string };

export type IamGrant = { kind: 'policy'; arn: string } | { kind: 'group'; name: string };

export interface AwsIamGrammarPolicy {
  /** Identities the gateway must never touch (`alice`, `role/deployer`), compared case-insensitively as IAM does. */
  protectedAccounts: string[];
  /** Policy ARNs the gateway may attach: exact ARNs, or `.../path/*` prefixes. Empty: no policy grants at all. */
  allowedPolicyArns: string[];
  /** Groups the gateway may add members to. Empty: no group grants at all. */
  allowedGroups: string[];
}

export class AwsIamGrammar implements ConnectorGrammar {
  readonly type = 'aws-iam';

  /** A role is what a workload assumes: its binding to IAM. */
  inventoryType(name: string): string | undefined {
    return name.startsWith(ROLE_PREFIX) ? 'workload_binding' : undefined;
  }
  private readonly protectedAccounts: Set<string>;
  private readonly exactPolicies: Set<string>;
  private readonly policyPrefixes: string[];
  private readonly groups: Map<string, string>;

  constructor(policy: AwsIamGrammarPolicy) {
    this.protectedAccounts = new Set(policy.protectedAccounts.map((a) => a.toLowerCase()));
    this.exactPolicies = new Set(policy.allowedPolicyArns.filter((a) => !a.endsWith('*')));
    this.policyPrefixes = policy.allowedPolicyArns.filter((a) => a.endsWith('/*')).map((a) => a.slice(0, -1));
    // IAM group names are unique case-insensitively; the allow-list's spelling is the canonical one.
    this.groups = new Map(policy.allowedGroups.map((g) => [g.toLowerCase(), g]));
  }

  validateIdentity(identity: IdentityRef): FieldProblem[] {
    const problems: FieldProblem[] = [];
    const entity = parseIdentityName(identity.name);
    if (entity === null) {
      problems.push({
        path: 'identity.name',
        message: "must be an IAM user name or 'role/' and a role name: 1-64 characters of letters, digits and + = , . @ _ -",
      });
    } else if (this.isProtected(identity.name)) {
      problems.push({ path: 'identity.name', message: `'${identity.name}' is a protected identity and cannot be changed by a ticket` });
    }
    if (identity.host !== undefined) problems.push({ path: 'identity.host', message: 'AWS IAM identities have no host; leave it out' });
    return problems;
  }

  parseGrant(text: string): ParsedGrant | { problem: string } {
    const grant = parseGrantText(text);
    if ('problem' in grant) return grant;
    if (grant.kind === 'policy') {
      if (!this.policyAllowed(grant.arn)) {
        return { problem: `policy '${grant.arn}' is not on this connector's allow-list of policy ARNs` };
      }
      return { canonical: [`policy=${grant.arn}`] };
    }
    const allowed = this.groups.get(grant.name.toLowerCase());
    if (allowed === undefined) return { problem: `group '${grant.name}' is not on this connector's allow-list of groups` };
    return { canonical: [`group=${allowed}`] };
  }

  isProtected(name: string): boolean {
    return this.protectedAccounts.has(name.toLowerCase());
  }

  private policyAllowed(arn: string): boolean {
    return this.exactPolicies.has(arn) || this.policyPrefixes.some((p) => arn.startsWith(p));
  }
}

/** `alice` → user alice; `role/deployer` → role deployer; anything else → null. */
export function parseIdentityName(name: string): IamEntity | null {
  if (name.startsWith(ROLE_PREFIX)) {
    const role = name.slice(ROLE_PREFIX.length);
    return IAM_NAME.test(role) ? { kind: 'role', name: role } : null;
  }
  return IAM_NAME.test(name) ? { kind: 'user', name } : null;
}

export function roleIdentityName(roleName: string): string {
  return `${ROLE_PREFIX}${roleName}`;
}

/**
 * The shape of a grant, without the allow-list: `policy=<ARN>` or `group=<name>`, exactly (no spaces, lower-case
 * keys), so that the text a ticket carries is the text inspect reports.
 */
export function parseGrantText(text: string): IamGrant | { problem: string } {
  if (text.length > 2100) return { problem: 'is too long for a policy ARN or group name' };
  if (text.startsWith('policy=')) {
    const arn = text.slice('policy='.length);
    if (!POLICY_ARN.test(arn)) {
      return { problem: "a policy grant must be 'policy=arn:aws:iam::aws:policy/<name>' or 'policy=arn:aws:iam::<account>:policy/<path/><name>'" };
    }
    return { kind: 'policy', arn };
  }
  if (text.startsWith('group=')) {
    const name = text.slice('group='.length);
    if (!GROUP_NAME.test(name)) return { problem: 'a group name must be 1-128 characters of letters, digits and + = , . @ _ -' };
    return { kind: 'group', name };
  }
  return { problem: "must be 'policy=<managed policy ARN>' or 'group=<IAM group name>'" };
}
