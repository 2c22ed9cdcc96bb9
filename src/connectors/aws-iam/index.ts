import { z } from 'zod';
import { baseFields, envKey } from '../connector-config';
import { defineConnectorType, protectedNames } from '../connector-type';
import { ruleAttributes } from '../../inventory/ownership';
import { createAwsIamConnector } from './aws-iam-connector';
import { AwsIamGrammar, IAM_MANAGED_PATH, POLICY_ARN_ALLOW_ENTRY } from './aws-iam-grammar';

export const awsIamInstanceSchema = z
  .object({
    ...baseFields,
    type: z.literal('aws-iam'),
    /** Absent: AWS itself. Set for an IAM-compatible endpoint (moto in tests and the demo). */
    endpoint: z.string().url().optional(),
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as us-east-1').default('us-east-1'),
    /** The IAM path the gateway creates users under and confines itself to, e.g. /changegate/. */
    path: z.string().regex(IAM_MANAGED_PATH, "must be an IAM path with at least one segment, e.g. '/changegate/'").default('/changegate/'),
    /** The IAM user that owns the gateway's access key: protected, like every name in policy.protectedAccounts. */
    userName: z.string().regex(/^[\w+=,.@-]{1,64}$/, 'must be an IAM user name'),
    /** The key pair is never in this file: these name the environment variables holding it. */
    accessKeyIdEnv: envKey,
    secretAccessKeyEnv: envKey,
    /** Policies a ticket may attach: exact ARNs, or `arn:...:policy/<path>/*` for every policy under a path. */
    allowedPolicyArns: z.array(z.string().regex(POLICY_ARN_ALLOW_ENTRY, 'must be a managed policy ARN, or one ending in /* for a policy path')).default([]),
    /** Groups a ticket may add a user to. */
    allowedGroups: z.array(z.string().regex(/^[\w+=,.@-]{1,128}$/, 'must be an IAM group name')).default([]),
  })
  .strict();

export type AwsIamInstanceConfig = z.infer<typeof awsIamInstanceSchema>;

export const awsIamConnectorType = defineConnectorType<AwsIamInstanceConfig>({
  type: 'aws-iam',
  schema: awsIamInstanceSchema,
  // Access keys: a user holds two at once, so the old one is retired only after the new one is delivered and works.
  capabilities: { rotation: 'two-phase' },
  grammar: (cfg) =>
    new AwsIamGrammar({
      protectedAccounts: protectedNames(cfg, cfg.userName),
      allowedPolicyArns: cfg.allowedPolicyArns,
      allowedGroups: cfg.allowedGroups,
    }),
  create: (cfg, secrets) =>
    createAwsIamConnector({
      name: cfg.name,
      endpoint: cfg.endpoint,
      region: cfg.region,
      path: cfg.path,
      accessKeyId: secrets(cfg.accessKeyIdEnv),
      secretAccessKey: secrets(cfg.secretAccessKeyEnv),
      userName: cfg.userName,
      protectedAccounts: protectedNames(cfg, cfg.userName),
      allowedPolicyArns: cfg.allowedPolicyArns,
      allowedGroups: cfg.allowedGroups,
      ownershipTags: ruleAttributes(cfg.policy.ownership),
    }),
});
