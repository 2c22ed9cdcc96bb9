import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseIsoDuration } from '../actions/iso-duration';
import type { Actor } from '../auth/principal';
import { DRIFT_ACTIONS, type DriftAction, FINDING_TYPES, type FindingType } from '../drift/drift';
import type { GrantClass } from '../connectors/registry';
import { IDENTITY_TYPES } from '../kinds/spec';
import { EXCEPTION_DECISIONS, type ExceptionTerms } from '../change/exception';
import { ON_TIMEOUT, type OnTimeout, SWITCHED_TRIGGERS, type SwitchedTrigger } from '../certification/certification';

/** The kinds an emergency change may run before it is authorized, where the policy says so per connector. */
export const EMERGENCY_KINDS = ['rotate', 'joiner'] as const;

/**
 * The governance policy: one file (CHANGEGATE_POLICY), validated at start-up. It says who the people on a ticket are
 * as principals, and which grants need an explicit decision beyond the ticket's own approval.
 */
const hasControl = (value: string) => [...value].some((ch) => ch.charCodeAt(0) < 0x20 || ch === '\u007f');
const text = (max: number) => z.string().min(1, 'must not be empty').max(max).refine((v) => !hasControl(v), 'must not contain control characters');

/**
 * Standing access a privilege class allows: a grant of the class with neither a ttl nor an `until` is accepted for
 * these identity types, provided the action names an owner (the inventory records it, so that the owner's leaver
 * revokes it and certification reviews it).
 */
const standingSchema = z
  .object({
    identityTypes: z
      .array(z.enum(IDENTITY_TYPES, { errorMap: () => ({ message: `must be one of ${IDENTITY_TYPES.join(', ')}` }) }))
      .min(1, `must name at least one identity type (${IDENTITY_TYPES.join(', ')})`)
      .refine((types) => new Set(types).size === types.length, 'must not name an identity type twice'),
  })
  .strict();

const isoDuration = z.string().refine((t) => (parseIsoDuration(t) ?? 0) > 0, 'must be an ISO-8601 duration longer than zero (e.g. P7D)');

/**
 * Event-driven certification: which events open an item, who reviews it, by when, and what happens at the due date
 * when no one decided. Reviewer: exactly one of `role` (a principal holding it), `group` (principals the people mapping
 * puts in the group, source `group`) or `manager` (the owner's manager, the `manager` attribute of the owner's entry in
 * the named LDAP connector's directory, as a directory user the people mapping names, source `directory`; an owner with
 * no manager there falls back to `fallbackRole`).
 */
const certificationSchema = z
  .object({
    triggers: z
      .object(Object.fromEntries(SWITCHED_TRIGGERS.map((t) => [t, z.boolean().default(false)])) as Record<SwitchedTrigger, z.ZodDefault<z.ZodBoolean>>)
      .strict()
      .default({}),
    reviewer: z
      .object({
        role: z.enum(['security-reviewer', 'change-manager'], { errorMap: () => ({ message: "must be 'security-reviewer' or 'change-manager'" }) }).optional(),
        group: text(200).optional(),
        manager: z.object({ directory: text(100) }).strict().optional(),
        fallbackRole: z.enum(['security-reviewer', 'change-manager'], { errorMap: () => ({ message: "must be 'security-reviewer' or 'change-manager'" }) }).default('security-reviewer'),
      })
      .strict()
      .refine((r) => [r.role, r.group, r.manager].filter((x) => x !== undefined).length === 1, 'must name exactly one of role, group, manager'),
    due: isoDuration.default('P7D'),
    onTimeout: z.enum(ON_TIMEOUT, { errorMap: () => ({ message: "must be 'keep-and-escalate' (the default) or 'revoke'" }) }).default('keep-and-escalate'),
    /** The ticket system a revocation change is opened in. */
    source: text(20).default('servicenow'),
    unusedAfter: z.unknown().refine((v) => v === undefined, 'not supported: no configured connector can tell when an identity was last used').optional(),
  })
  .strict();

export type CertificationPolicy = z.infer<typeof certificationSchema>;

export const policyFileSchema = z
  .object({
    version: z.literal(1),
    /**
     * Who is who: a ticket's people (ServiceNow `requested_by` / `assigned_to`, as the user's sys_id the record
     * carries) as principals. `principal` matches an authenticated caller's id (JWT `sub`, API token id) or name
     * (JWT name/email, API token name); `*` matches any run of characters.
     */
    people: z.array(z.object({ source: text(20), user: text(100), principal: text(200) }).strict()).max(10_000).default([]),
    /**
     * Grants that need a change manager's decision before they are made, per connector: patterns over the grant's
     * canonical text (`*` matches any run of characters), e.g. "* ON `reporting`.*".
     */
    privileged: z.array(z.object({ system: text(100), grants: z.array(text(300)).min(1).max(100), reason: text(300).optional() }).strict()).max(1_000).default([]),
    /**
     * Privilege classes, per connector: the grants a class covers (patterns as above) and how long such a grant may
     * last (`maxTtl`, counted from the verified grant). The first class whose pattern matches a grant applies.
     * `standing` (optional): the identity types that may hold such a grant with no ttl and no `until`.
     */
    classes: z
      .array(
        z
          .object({
            name: text(100),
            system: text(100),
            grants: z.array(text(300)).min(1).max(100),
            maxTtl: z.string().refine((t) => parseIsoDuration(t) !== null, 'must be an ISO-8601 duration (e.g. P7D)'),
            standing: standingSchema.optional(),
          })
          .strict(),
      )
      .max(1_000)
      .default([]),
    /**
     * What an emergency change may do before it is authorized, per connector, beyond revocations (which always run at
     * once): `rotate` (replacing a credential grants nothing) and `joiner` (a grant, which opens an emergency
     * exception: a security reviewer accepts or revokes it after the fact, by the deadline `exceptions` sets).
     */
    emergency: z
      .array(
        z
          .object({
            system: text(100),
            kinds: z.array(z.enum(EMERGENCY_KINDS, { errorMap: () => ({ message: `must be one of ${EMERGENCY_KINDS.join(', ')}` }) })).min(1).max(10),
            reason: text(300).optional(),
          })
          .strict(),
      )
      .max(1_000)
      .default([]),
    /**
     * The review of grants made before authorization: `window` from the verified grant to the deadline, the share
     * of it after which an undecided exception is escalated, what the deadline does with no decision (`revoke`
     * unless this says `accept`), and the ServiceNow group the Post Implementation Review task is assigned to.
     */
    exceptions: z
      .object({
        window: z.string().refine((t) => {
          const ms = parseIsoDuration(t);
          return ms !== null && ms >= 1_000 && ms <= 90 * 86_400_000;
        }, 'must be an ISO-8601 duration from PT1S to P90D (e.g. PT24H)').default('PT24H'),
        escalateAfter: z.number().gt(0, 'must be a share of the window above 0').lt(1, 'must be a share of the window below 1').default(0.5),
        onDeadline: z.enum(EXCEPTION_DECISIONS, { errorMap: () => ({ message: "must be 'revoke' or 'accept'" }) }).default('revoke'),
        reviewGroup: text(100).default('Change Management'),
      })
      .strict()
      .default({}),
    /**
     * What discovery does with drift on a system, per finding type (orphan, extra-grant, missing-grant, re-enabled):
     * `report` (the default: listed in GET /api/drift), `remediate` (a standard change is opened in `source`, the
     * ticket system named, carrying the actions that bring the target back) or `certify` (a certification item is
     * opened for the identity; needs the `certification` section).
     */
    drift: z
      .array(
        z
          .object({
            system: text(100),
            on: z.record(
              z.enum(FINDING_TYPES, { errorMap: () => ({ message: `must be one of ${FINDING_TYPES.join(', ')}` }) }),
              z.enum(DRIFT_ACTIONS, { errorMap: () => ({ message: `must be one of ${DRIFT_ACTIONS.join(', ')}` }) }),
            ),
            source: text(20).default('servicenow'),
            /**
             * At most this many orphans of the system are removed per scan under `remediate`; when more await it, none
             * is and all are reported: a target full of unknown accounts needs a person, not a mass leaver.
             */
            orphanCap: z.number().int().min(1).max(1_000).optional(),
          })
          .strict(),
      )
      .max(1_000)
      .default([]),
    certification: certificationSchema.optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    p.drift.forEach((d, i) => {
      for (const [type, action] of Object.entries(d.on)) {
        if (action === 'certify' && !p.certification) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['drift', i, 'on', type], message: 'certify needs the certification section (who reviews, by when)' });
      }
    });
  });

export type PolicyFile = z.infer<typeof policyFileSchema>;
/** A policy as written (omitted lists default to empty). */
export type PolicyInput = z.input<typeof policyFileSchema>;

/** Orphans one scan may remove on a system when the policy names no cap. */
export const DEFAULT_ORPHAN_CAP = 5;

export const EMPTY_POLICY: PolicyFile = Object.freeze({
  version: 1, people: [], privileged: [], classes: [], emergency: [], drift: [],
  exceptions: { window: 'PT24H', escalateAfter: 0.5, onDeadline: 'revoke', reviewGroup: 'Change Management' },
}) as PolicyFile;

/** `*` is any run of characters; everything else is literal. */
export function globMatcher(pattern: string): (value: string) => boolean {
  const re = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 's');
  return (value) => re.test(value);
}

export function parsePolicyFile(raw: unknown, source = 'policy', systems?: readonly string[]): PolicyFile {
  const parsed = policyFileSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${source}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  if (systems) {
    for (const list of ['privileged', 'classes', 'emergency', 'drift'] as const) {
      parsed.data[list].forEach((p, i) => {
        if (!systems.includes(p.system)) throw new Error(`${source}: ${list}.${i}.system: no connector named '${p.system}' is configured (configured: ${systems.join(', ')})`);
      });
    }
    const directory = parsed.data.certification?.reviewer.manager?.directory;
    if (directory !== undefined && !systems.includes(directory)) {
      throw new Error(`${source}: certification.reviewer.manager.directory: no connector named '${directory}' is configured (configured: ${systems.join(', ')})`);
    }
  }
  return parsed.data;
}

export function loadPolicyFile(path: string, systems?: readonly string[]): PolicyFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`policy ${path}: cannot read JSON`, { cause: err });
  }
  return parsePolicyFile(raw, `policy ${path}`, systems);
}

/** The policy as the API consults it. */
export class Policy {
  private readonly privileged = new Map<string, Array<(grant: string) => boolean>>();
  private readonly people: Array<{ source: string; user: string; matches: (value: string) => boolean }>;
  private readonly classes: Array<GrantClass & { system: string; matches: Array<(grant: string) => boolean> }>;
  private readonly emergency: Array<{ system: string; kinds: readonly string[] }>;
  private readonly drift: PolicyFile['drift'];
  private readonly exceptions: ExceptionTerms;
  private readonly certificationPolicy: CertificationPolicy | undefined;

  constructor(input: PolicyInput = EMPTY_POLICY) {
    const file = parsePolicyFile(input);
    for (const p of file.privileged) {
      const list = this.privileged.get(p.system) ?? [];
      list.push(...p.grants.map(globMatcher));
      this.privileged.set(p.system, list);
    }
    this.people = file.people.map((p) => ({ source: p.source, user: p.user, matches: globMatcher(p.principal) }));
    this.classes = (file.classes ?? []).map((c) => ({
      name: c.name,
      system: c.system,
      maxTtl: c.maxTtl,
      maxTtlMs: parseIsoDuration(c.maxTtl) as number,
      ...(c.standing ? { standing: { identityTypes: [...c.standing.identityTypes] } } : {}),
      matches: c.grants.map(globMatcher),
    }));
    this.emergency = (file.emergency ?? []).map((e) => ({ system: e.system, kinds: [...e.kinds] }));
    this.drift = file.drift ?? [];
    const windowMs = parseIsoDuration(file.exceptions.window) as number;
    this.exceptions = {
      window: file.exceptions.window,
      windowMs,
      escalateAfterMs: Math.round(windowMs * file.exceptions.escalateAfter),
      onDeadline: file.exceptions.onDeadline,
      reviewGroup: file.exceptions.reviewGroup,
    };
    this.certificationPolicy = file.certification;
  }

  /** The terms every emergency exception is opened under (window, escalation, deadline default, review group). */
  exceptionTerms(): ExceptionTerms {
    return { ...this.exceptions };
  }

  /** The certification section, when the policy has one (no section: nothing opens an item). */
  get certification(): CertificationPolicy | undefined {
    return this.certificationPolicy;
  }

  /** Whether an event of this kind opens a certification item. */
  certifies(trigger: SwitchedTrigger): boolean {
    return this.certificationPolicy?.triggers[trigger] === true;
  }

  /** What applies at an item's due date when no one decided. */
  onTimeout(): OnTimeout {
    return this.certificationPolicy?.onTimeout ?? 'keep-and-escalate';
  }

  /** What discovery does with a finding of `type` on `system` (report unless the policy says otherwise). */
  driftAction(system: string, type: FindingType): DriftAction {
    return this.drift.find((d) => d.system === system)?.on[type] ?? 'report';
  }

  /** The ticket system a remediation of drift on `system` is opened in. */
  driftSource(system: string): string {
    return this.drift.find((d) => d.system === system)?.source ?? 'servicenow';
  }

  /** How many orphans of `system` one scan may remove (see `orphanCap`). */
  driftOrphanCap(system: string): number {
    return this.drift.find((d) => d.system === system)?.orphanCap ?? DEFAULT_ORPHAN_CAP;
  }

  /** Whether an emergency change may run an action of `kind` on `system` before it is authorized. */
  beforeAuthorization(system: string, kind: string): boolean {
    return this.emergency.some((e) => e.system === system && e.kinds.includes(kind));
  }

  /** The privilege class a grant (canonical text) on `system` belongs to, if the policy names one. */
  classOf(system: string, grant: string): GrantClass | undefined {
    const c = this.classes.find((x) => x.system === system && x.matches.some((m) => m(grant)));
    return c ? { name: c.name, maxTtl: c.maxTtl, maxTtlMs: c.maxTtlMs, ...(c.standing ? { standing: c.standing } : {}) } : undefined;
  }

  /** Whether a grant, in canonical text, needs a change manager's decision on `system`. */
  isPrivileged(system: string, grant: string): boolean {
    return (this.privileged.get(system) ?? []).some((m) => m(grant));
  }

  /** The ticket users of `source` that `actor` is, by the who-is-who mapping. */
  ticketUsersOf(actor: Actor, source: string): string[] {
    return this.people.filter((p) => p.source === source && (p.matches(actor.id) || p.matches(actor.name))).map((p) => p.user);
  }
}
