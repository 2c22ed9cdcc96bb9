import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { PHASES, type Phase } from '../../change/ticket';

/** The issue property the gateway writes its gate to, and the Jira-expression validator reads. */
export const GATE_PROPERTY = 'changegate.gate';

const customField = z.string().regex(/^customfield_\d{1,10}$/, 'must be a custom field id such as customfield_10005');

/**
 * How one Jira site's change project maps onto the gateway's model. Nothing here is guessed from names: status names,
 * custom field ids and the status a forced close is sent back to all differ per site and come from configuration.
 */
export const jiraSettingsSchema = z
  .object({
    /** The JSM project whose changes the gateway serves, e.g. CHG. */
    projectKey: z.string().regex(/^[A-Z][A-Z0-9_]{1,9}$/, 'must be a Jira project key such as CHG'),
    /** Status name → phase. Every name must exist in the project (GET /rest/api/3/project/{key}/statuses) or /readyz fails. */
    statusPhases: z
      .record(z.string().min(1).max(255), z.enum(PHASES, { errorMap: () => ({ message: `must be one of ${PHASES.join(', ')}` }) }))
      .refine((m) => Object.keys(m).length > 0, 'must map at least one status'),
    /** A change closed without a passing gate is transitioned back to this status (one the statusPhases map). */
    revertStatus: z.string().min(1).max(255),
    /** The select field holding the change type ({"value": "Emergency"}). */
    changeTypeField: customField,
    /** Options of the change-type field, by meaning; any other option is Normal and the gateway says so on the issue. */
    changeTypes: z
      .object({ emergency: z.array(z.string().min(1)).min(1), known: z.array(z.string().min(1)) })
      .default({ emergency: ['Emergency'], known: ['Standard', 'Normal', 'Emergency'] }),
    /** A text field carrying the identity actions; without it (or when empty) a `changegate` code block in the description. */
    actionsField: customField.optional(),
    /** A date-time field ending the change window (`until: window-end` grants end there). */
    windowEndField: customField.optional(),
    /** The issue type of changes the gateway opens itself (drift remediation, leaked-credential rotation). */
    changeIssueType: z.string().min(1).max(255).optional(),
    /** The change-type option a standard change the gateway opens gets (an emergency one gets changeTypes.emergency[0]). */
    standardChangeType: z.string().min(1).max(255).optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (!(s.revertStatus in s.statusPhases)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['revertStatus'], message: `'${s.revertStatus}' is not one of the statuses statusPhases maps` });
    } else if (s.statusPhases[s.revertStatus] === 'closed' || s.statusPhases[s.revertStatus] === 'cancelled') {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['revertStatus'], message: 'must map to a phase that is not final' });
    }
    if (!Object.values(s.statusPhases).includes('closed')) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['statusPhases'], message: 'must map at least one status to closed' });
    }
  });

export type JiraSettings = z.infer<typeof jiraSettingsSchema>;

export function parseJiraSettings(value: unknown, origin: string): JiraSettings {
  const parsed = jiraSettingsSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new Error(`invalid Jira settings in ${origin}:\n  ${problems.join('\n  ')}`);
  }
  return parsed.data;
}

/** JIRA_SETTINGS: a file name, or the settings themselves as JSON (starting with `{`), e.g. from a secret store. */
export function loadJiraSettings(fileOrJson: string, baseDir?: string): JiraSettings {
  const inline = fileOrJson.trim().startsWith('{');
  const origin = inline ? 'JIRA_SETTINGS' : baseDir ? resolve(baseDir, fileOrJson) : fileOrJson;
  let json: unknown;
  try {
    json = JSON.parse(inline ? fileOrJson : readFileSync(origin, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read Jira settings ${origin}: ${(err as Error).message}`, { cause: err });
  }
  return parseJiraSettings(json, origin);
}

/** The demo project of the simulator (config/jira.demo.json holds the same). */
export const DEMO_JIRA_SETTINGS: JiraSettings = {
  projectKey: 'CHG',
  statusPhases: {
    Planning: 'draft',
    Authorize: 'authorization',
    'Awaiting implementation': 'authorization',
    Implementing: 'implement',
    Review: 'review',
    Completed: 'closed',
    Canceled: 'cancelled',
    Declined: 'cancelled',
  },
  revertStatus: 'Implementing',
  changeTypeField: 'customfield_10005',
  changeTypes: { emergency: ['Emergency'], known: ['Standard', 'Normal', 'Emergency'] },
  actionsField: 'customfield_10050',
  windowEndField: 'customfield_10061',
};

export function phaseOfStatus(settings: JiraSettings, status: string): Phase | undefined {
  return Object.prototype.hasOwnProperty.call(settings.statusPhases, status) ? settings.statusPhases[status] : undefined;
}
