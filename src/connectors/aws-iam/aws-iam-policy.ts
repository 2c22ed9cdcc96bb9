/**
 * The least-privilege identity policy for the gateway's own IAM user, built from the instance's config. The
 * README shows it rendered; operators attach it (inline or as a customer-managed policy) to the connector's user.
 *
 * - Reads (GetUser, GetRole, ListUsers, ListRoles) cover the whole account: discovery needs them, and they learn
 *   nothing ListUsers does not already show.
 * - Every write, and every per-identity read, is limited to users and roles under the managed path.
 * - AttachUserPolicy/AttachRolePolicy only for the allow-listed policy ARNs (iam:PolicyARN condition); detaching
 *   and leaving groups is allowed for any policy or group, because taking access away is the safe direction.
 * - AddUserToGroup only on the allow-listed groups.
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

export function leastPrivilegePolicy(opts: {
  accountId: string;
  partition?: string;
  /** The managed path, e.g. `/changegate/`. */
  path: string;
  allowedPolicyArns: string[];
  allowedGroups: string[];
}): IamPolicyDocument {
  const arn = (resource: string) => `arn:${opts.partition ?? 'aws'}:iam::${opts.accountId}:${resource}`;
  const statements: IamPolicyStatement[] = [
    { Sid: 'ReadIdentities', Effect: 'Allow', Action: ACCOUNT_READ_ACTIONS, Resource: ['*'] },
    { Sid: 'ManageUsersUnderPath', Effect: 'Allow', Action: USER_ACTIONS, Resource: [arn(`user${opts.path}*`)] },
    { Sid: 'ManageRolesUnderPath', Effect: 'Allow', Action: ROLE_ACTIONS, Resource: [arn(`role${opts.path}*`)] },
    { Sid: 'LeaveAnyGroup', Effect: 'Allow', Action: ['iam:RemoveUserFromGroup'], Resource: [arn('group/*')] },
    { Sid: 'DetachRolesFromInstanceProfiles', Effect: 'Allow', Action: ['iam:RemoveRoleFromInstanceProfile'], Resource: [arn('instance-profile/*')] },
  ];
  if (opts.allowedPolicyArns.length > 0) {
    statements.push({
      Sid: 'AttachAllowListedPolicies',
      Effect: 'Allow',
      Action: ['iam:AttachUserPolicy', 'iam:AttachRolePolicy'],
      Resource: [arn(`user${opts.path}*`), arn(`role${opts.path}*`)],
      // ArnLike: exact ARNs match themselves, `.../path/*` entries match every policy under that path.
      Condition: { ArnLike: { 'iam:PolicyARN': opts.allowedPolicyArns } },
    });
  }
  if (opts.allowedGroups.length > 0) {
    statements.push({
      Sid: 'JoinAllowListedGroups',
      Effect: 'Allow',
      Action: ['iam:AddUserToGroup'],
      // A group's ARN carries its path: `group/<name>` at the root, `group/<path>/<name>` elsewhere.
      Resource: opts.allowedGroups.flatMap((g) => [arn(`group/${g}`), arn(`group/*/${g}`)]),
    });
  }
  return { Version: '2012-10-17', Statement: statements };
}
