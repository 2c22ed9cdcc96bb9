import { z } from 'zod';
import { actionSchema } from '../kinds/registry';
import type { IdentityRef } from '../kinds/spec';

/**
 * Identity action spec, version 1. Carried by a change ticket (ServiceNow: the JSON string in
 * `u_identity_actions`), validated here for shape and by the named connector for its target's grammar. Each kind's
 * schema lives with its kind (src/kinds/<kind>/edge.ts); this module dispatches through the kind registry.
 */
export { IDENTITY_TYPES, identitySchema, type IdentityRef } from '../kinds/spec';
export { PLANNED_KINDS } from '../kinds/registry';
export { joinerSchema, type JoinerAction } from '../kinds/joiner/edge';
export { ttlMs } from '../kinds/grant-policy';
export { leaverSchema, type LeaverAction } from '../kinds/leaver/edge';
export { rotateSchema, secretDestinationSchema, type RotateAction, type SecretDestination } from '../kinds/rotate/edge';

/** One action of any registered kind: `kind` picks the kind's schema. */
export const identityActionSchema = z.lazy(() => actionSchema());

/** Either a bare array (v1) or the versioned envelope `{version: 1, actions: [...]}`. */
export const identityActionsDocumentSchema = z.union([
  z.array(identityActionSchema).max(100),
  z.object({ version: z.literal(1), actions: z.array(identityActionSchema).max(100) }).strict(),
]);

/** A parsed action: its kind's own fields, plus what every kind carries. */
export interface IdentityAction {
  kind: string;
  /** Absent on an action that selects its identities through the inventory (a decommission, a leaver by owner). */
  system?: string;
  identity?: IdentityRef;
  [field: string]: unknown;
}
