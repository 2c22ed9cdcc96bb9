import { z } from 'zod';
import { parseIsoDuration } from './iso-duration';

/**
 * Identity action spec, version 1. Carried by a change ticket (ServiceNow: the JSON string in
 * `u_identity_actions`), validated here for shape and by the named connector for its target's grammar.
 */
export const IDENTITY_TYPES = ['person', 'service_account'] as const;
export const SUPPORTED_KINDS = ['joiner', 'leaver', 'rotate'] as const;
export const PLANNED_KINDS = ['mover', 'deploy', 'decommission'] as const;

const name = z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters');

export const identitySchema = z
  .object({
    type: z.enum(IDENTITY_TYPES),
    name,
    host: z.string().min(1).max(255).optional(),
  })
  .strict();

/** Beyond any sane policy, and far inside what a Date and a Temporal timer can hold. Policies cap lower. */
const TTL_CEILING_MS = 100 * 365 * 86_400_000;

const ttl = z.string().max(64).superRefine((text, ctx) => {
  const ms = parseIsoDuration(text);
  if (ms === null) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `'${text.slice(0, 40)}' is not an ISO-8601 duration (e.g. PT8H)` });
  else if (ms < 1000) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be at least one second (PT1S)' });
  else if (ms > TTL_CEILING_MS) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be at most 100 years (P100Y)' });
});

const common = {
  system: z.string().min(1, 'must name a configured connector').max(100),
  identity: identitySchema,
};

export const leaverSchema = z.object({ kind: z.literal('leaver'), ...common }).strict();
export const joinerSchema = z
  .object({
    kind: z.literal('joiner'),
    ...common,
    grants: z.array(z.string().min(1).max(200)).min(1, 'a joiner needs at least one grant').max(50),
    ttl: ttl.optional(),
  })
  .strict();

/** Where a rotated credential goes: a path in a secrets-store connector, the place the workload reads it. */
export const secretDestinationSchema = z
  .object({
    system: z.string().min(1, 'must name a configured secrets connector').max(100),
    path: z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters'),
  })
  .strict();

export const rotateSchema = z.object({ kind: z.literal('rotate'), ...common, deliverTo: secretDestinationSchema }).strict();

export const identityActionSchema = z.discriminatedUnion('kind', [leaverSchema, joinerSchema, rotateSchema], {
  errorMap: (issue, ctx) =>
    issue.code === z.ZodIssueCode.invalid_union_discriminator
      ? { message: `kind must be one of ${SUPPORTED_KINDS.join(', ')} (spec v1; ${PLANNED_KINDS.join(', ')} are not supported yet)` }
      : { message: ctx.defaultError },
});

/** Either a bare array (v1) or the versioned envelope `{version: 1, actions: [...]}`. */
export const identityActionsDocumentSchema = z.union([
  z.array(identityActionSchema).max(100),
  z.object({ version: z.literal(1), actions: z.array(identityActionSchema).max(100) }).strict(),
]);

export type IdentityRef = z.infer<typeof identitySchema>;
export type LeaverAction = z.infer<typeof leaverSchema>;
export type JoinerAction = z.infer<typeof joinerSchema>;
export type RotateAction = z.infer<typeof rotateSchema>;
export type SecretDestination = z.infer<typeof secretDestinationSchema>;
export type IdentityAction = z.infer<typeof identityActionSchema>;

export function ttlMs(action: JoinerAction): number | undefined {
  return action.ttl === undefined ? undefined : (parseIsoDuration(action.ttl) ?? undefined);
}
