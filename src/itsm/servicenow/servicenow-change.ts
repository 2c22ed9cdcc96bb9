import { z } from 'zod';
import { type ParseResult, parseIdentityActions } from '../../actions/plan-actions';
import type { Ticket } from '../../change/ticket';
import type { GrammarRegistry } from '../../connectors/registry';
import { formatPath } from '../../errors';
import { identityActionsDigest } from './servicenow-gate';
import { DEFAULT_STATE_PHASES, type ServiceNowStatePhases, servicenowEmergency, servicenowPhase } from './servicenow-phase';

/** A task number such as CHG0030001: anchored and caret-free, since it is spliced into encoded queries. */
export const CHANGE_NUMBER = /^[A-Z]{2,8}\d{4,12}$/;

/** Table API values are strings; reference fields are {link, value}. */
const reference = z.object({ link: z.string().optional(), value: z.string() }).passthrough();
const IDENTITY_ACTIONS_FIELD = 'u_identity_actions';

export const changeRecordSchema = z
  .object({
    sys_id: z.string().regex(/^[0-9a-f]{32}$/, 'must be a 32-character lower-case hex sys_id'),
    number: z.string().regex(CHANGE_NUMBER, 'must be a ticket number such as CHG0030001'),
    sys_mod_count: z.string().regex(/^\d{1,9}$/, 'must be a non-negative integer string'),
    // Any integer choice value: a state the configuration does not map is accepted as phase `unknown` (a 400 here
    // would be final, since ServiceNow never retries a delivery).
    state: z.string().regex(/^-?\d{1,9}$/, 'must be an integer choice value such as -1'),
    approval: z.string().max(40).default(''),
    type: z.string().max(40).default(''),
    u_identity_actions: z.string().max(100_000).default(''),
    // Only informative (the gate as the ticket showed it): an odd value is dropped, never a reason to refuse a delivery.
    u_identity_cleanup: z.string().max(40).optional().catch(undefined),
    u_identity_cleanup_digest: z.string().max(128).optional().catch(undefined),
    assignment_group: z.union([reference, z.literal('')]).optional(),
    requested_by: z.union([reference, z.literal('')]).optional(),
    assigned_to: z.union([reference, z.literal('')]).optional(),
    /** The configuration item; its name (`display_value`) only where the sender asked for display values too. */
    cmdb_ci: z.union([reference.extend({ display_value: z.string().max(200).optional() }), z.literal('')]).optional().catch(undefined),
    /** The change window's end, as the Table API sends a glide_date_time (UTC). */
    end_date: z
      .union([
        z.literal(''),
        z
          .string()
          .regex(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/, 'must be a date and time such as 2026-12-01 18:00:00')
          .refine((v) => !Number.isNaN(Date.parse(`${v.replace(' ', 'T')}Z`)) && new Date(`${v.replace(' ', 'T')}Z`).toISOString().slice(0, 19) === v.replace(' ', 'T'), 'is not a real date and time'),
      ])
      .optional(),
  })
  .passthrough();

export type ChangeRecord = z.infer<typeof changeRecordSchema>;

/** Validates a change_request record and its identity actions into the normalised ticket; every problem names its field. */
export function parseChangeRecord(
  body: unknown,
  grammars: GrammarRegistry,
  phases: ServiceNowStatePhases = DEFAULT_STATE_PHASES,
): ParseResult<{ record: ChangeRecord; ticket: Ticket }> {
  const parsed = changeRecordSchema.safeParse(body);
  if (!parsed.success) {
    return { ok: false, issues: parsed.error.issues.map((i) => ({ path: formatPath(i.path) || '(body)', message: i.message })) };
  }
  const record = parsed.data;
  const configurationItem = record.cmdb_ci ? record.cmdb_ci.display_value : undefined;
  const actions = parseIdentityActions(record.u_identity_actions, grammars, IDENTITY_ACTIONS_FIELD, {
    ...(configurationItem ? { configurationItem } : {}),
    emergency: servicenowEmergency(record.type),
  });
  if (!actions.ok) return actions;
  const requester = record.requested_by ? record.requested_by.value : undefined;
  const implementer = record.assigned_to ? record.assigned_to.value : undefined;
  const windowEnd = record.end_date ? `${record.end_date.replace(' ', 'T')}Z` : undefined;
  return {
    ok: true,
    value: {
      record,
      ticket: {
        source: 'servicenow',
        key: record.number,
        recordId: record.sys_id,
        phase: servicenowPhase(record, phases),
        emergency: servicenowEmergency(record.type),
        ...(requester ? { requester } : {}),
        ...(implementer ? { implementer } : {}),
        ...(windowEnd ? { windowEnd } : {}),
        version: Number(record.sys_mod_count),
        sourceState: record.state,
        actions: actions.value,
        actionsDigest: identityActionsDigest(record.u_identity_actions),
        ...(record.u_identity_cleanup !== undefined
          ? { gateShown: { value: record.u_identity_cleanup, digest: record.u_identity_cleanup_digest ?? '' } }
          : {}),
      },
    },
  };
}
