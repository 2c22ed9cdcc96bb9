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

export const commonFields = {
  system: z.string().min(1, 'must name a configured connector').max(100),
  identity: identitySchema,
};

export type IdentityRef = z.infer<typeof identitySchema>;

