/**
 * The least-privilege identity policy for the gateway's own IAM user, built from the instance's config. The
 * README shows it rendered; operators attach it (inline or as a customer-managed policy) to the connector's user.
 *
 * - Reads (GetUser, GetRole, ListUsers, ListRoles) cover the whole account: discovery needs them, and they learn
 *   nothing ListUsers does not already show. ListUserTags and ListRoleTags join them only when the instance's
 *   ownership rules read tags (`readTags`).
 * - Writes and per-identity reads on users and roles are limited to those under the managed path.
 * - AttachUserPolicy/AttachRolePolicy only for the allow-listed policy ARNs (iam:PolicyARN condition); detaching is
 *   allowed for any policy, because taking access away is the safe direction. GetPolicy only on the allow-listed
 *   ARNs (provision checks a policy exists before it creates a user).
 * - AddUserToGroup, RemoveUserFromGroup and GetGroup only on the allow-listed groups; with no groups allow-listed,
 *   no group action at all.
 *
 * Exceptions, because IAM authorises these actions on a resource other than the user or role they change:
 * - AddUserToGroup/RemoveUserFromGroup are authorised on the group alone, so the credential can add or remove ANY
 *   user of the account (its own included, or one outside the managed path) to or from an allow-listed group. That
 *   grants nothing beyond the allow-list; the path limit for these calls is the connector's own check. Conversely,
 *   a user an administrator put in a group off the allow-list cannot be taken out of it by the gateway: its revoke
 *   stops there with AWS's AccessDenied (a refusal) after the user's credentials were deactivated.
 * - RemoveRoleFromInstanceProfile is authorised on the instance profile, which may live at any path, so it is
 *   allowed on every instance profile: the credential can detach any role from any instance profile (never attach
 *   one). Only DeleteRole in delete mode needs it.
 * - No UpdateAssumeRolePolicy: rewriting a role's trust policy would let a stolen gateway credential hand any
 *   managed role to an outside principal. So a disabled role keeps its trust policy (see the connector's revoke).
 */
export interface IamPolicyDocument {
  Version: '2012-10-17';
  Statement: IamPolicyStatement[];
}

export interface IamPolicyStatement {
  Sid: string;
  Effect: 'Allow' | 'Deny';
  Action: string[];
  Resource: string[];
  Condition?: Record<string, Record<string, string[]>>;
}

export const ACCOUNT_READ_ACTIONS = ['iam:GetUser', 'iam:GetRole', 'iam:ListUsers', 'iam:ListRoles'];
/** Only with ownership rules on tags: discovery reads every user's and role's tags, as it lists every user and role. */
export const TAG_READ_ACTIONS = ['iam:ListUserTags', 'iam:ListRoleTags'];
export const USER_ACTIONS = [
  'iam:CreateUser', 'iam:DeleteUser', 'iam:TagUser',
  'iam:ListAccessKeys', 'iam:CreateAccessKey', 'iam:UpdateAccessKey', 'iam:DeleteAccessKey',
  'iam:GetLoginProfile', 'iam:DeleteLoginProfile',
  'iam:ListSSHPublicKeys', 'iam:UpdateSSHPublicKey', 'iam:DeleteSSHPublicKey',
  'iam:ListSigningCertificates', 'iam:UpdateSigningCertificate', 'iam:DeleteSigningCertificate',
  'iam:ListMFADevices', 'iam:DeactivateMFADevice',
  'iam:ListAttachedUserPolicies', 'iam:DetachUserPolicy', 'iam:ListUserPolicies', 'iam:DeleteUserPolicy',
  'iam:ListGroupsForUser',
];
export const ROLE_ACTIONS = [
  'iam:ListAttachedRolePolicies', 'iam:DetachRolePolicy', 'iam:ListRolePolicies', 'iam:DeleteRolePolicy',
  'iam:ListInstanceProfilesForRole', 'iam:DeleteRole',
];
export const GROUP_ACTIONS = ['iam:GetGroup', 'iam:AddUserToGroup', 'iam:RemoveUserFromGroup'];

export function leastPrivilegePolicy(opts: {
  accountId: string;
  partition?: string;
  /** The managed path, e.g. `/changegate/`. */
  path: string;
  allowedPolicyArns: string[];
  allowedGroups: string[];
  /** The instance's ownership rules read tags (policy.ownership `attribute`): discovery lists tags account-wide. */
  readTags?: boolean;
}): IamPolicyDocument {
  const arn = (resource: string) => `arn:${opts.partition ?? 'aws'}:iam::${opts.accountId}:${resource}`;
  const statements: IamPolicyStatement[] = [
    { Sid: 'ReadIdentities', Effect: 'Allow', Action: [...ACCOUNT_READ_ACTIONS, ...(opts.readTags ? TAG_READ_ACTIONS : [])], Resource: ['*'] },
    { Sid: 'ManageUsersUnderPath', Effect: 'Allow', Action: USER_ACTIONS, Resource: [arn(`user${opts.path}*`)] },
    { Sid: 'ManageRolesUnderPath', Effect: 'Allow', Action: ROLE_ACTIONS, Resource: [arn(`role${opts.path}*`)] },
    { Sid: 'DetachRolesFromInstanceProfiles', Effect: 'Allow', Action: ['iam:RemoveRoleFromInstanceProfile'], Resource: [arn('instance-profile/*')] },
  ];
  if (opts.allowedPolicyArns.length > 0) {
    statements.push(
      {
        Sid: 'AttachAllowListedPolicies',
        Effect: 'Allow',
        Action: ['iam:AttachUserPolicy', 'iam:AttachRolePolicy'],
        Resource: [arn(`user${opts.path}*`), arn(`role${opts.path}*`)],
        // ArnLike: exact ARNs match themselves, `.../path/*` entries match every policy under that path.
        Condition: { ArnLike: { 'iam:PolicyARN': opts.allowedPolicyArns } },
      },
      // The allow-list entries are policy ARNs or `.../path/*` patterns, both valid as Resource.
      { Sid: 'ReadAllowListedPolicies', Effect: 'Allow', Action: ['iam:GetPolicy'], Resource: opts.allowedPolicyArns },
    );
  }
  if (opts.allowedGroups.length > 0) {
    statements.push({
      Sid: 'ManageAllowListedGroupMembership',
      Effect: 'Allow',
      Action: GROUP_ACTIONS,
      // A group's ARN carries its path: `group/<name>` at the root, `group/<path>/<name>` elsewhere.
      Resource: opts.allowedGroups.flatMap((g) => [arn(`group/${g}`), arn(`group/*/${g}`)]),
    });
  }
  return { Version: '2012-10-17', Statement: statements };
}
