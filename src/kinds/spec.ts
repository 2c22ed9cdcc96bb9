import { z } from 'zod';

/** What every identity action carries, whatever its kind: the target system and the identity on it. */
export const IDENTITY_TYPES = ['person', 'service_account'] as const;

const name = z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters');

export const identitySchema = z
  .object({
    type: z.enum(IDENTITY_TYPES),
    name,
    host: z.string().min(1).max(255).optional(),
  })
  .strict();

/** C0 and C1 controls, DEL, and the Unicode line and paragraph separators: nothing a name needs, much a log forger does. */
const CONTROL = /[\p{Cc}\u2028\u2029]/u;

/** An owner (a person or team) or a workload (the configuration item an identity serves, e.g. ServiceNow cmdb_ci). */
export const attributionSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(200, 'must be at most 200 characters')
  .refine((v) => !CONTROL.test(v), 'must not contain control characters')
  .refine((v) => v.trim() === v, 'must not start or end with white space');

export const commonFields = {
  system: z.string().min(1, 'must name a configured connector').max(100),
  identity: identitySchema,
  /** Who answers for the identity: lands in the inventory. */
  owner: attributionSchema.optional(),
  /** What it serves: lands in the inventory. */
  workload: attributionSchema.optional(),
};

export type IdentityRef = z.infer<typeof identitySchema>;

