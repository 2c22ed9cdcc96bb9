/**
 * Leaked-secret reports: what a secret scanner says, authenticated and reduced to a fingerprint before anything else
 * sees it. The literal is fingerprinted the moment it is known and dropped; it is never stored, logged, put in a
 * workflow or forwarded.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/** GitHub's webhook signature header: `sha256=<hex HMAC-SHA256 of the raw body>`. */
export const HUB_SIGNATURE_256 = 'x-hub-signature-256';
export const GITHUB_EVENT = 'x-github-event';

/** Checks `sha256=<hex>` over the raw bytes, in constant time; false for anything malformed. */
export function verifyHubSignature(raw: Buffer, header: string | undefined, secret: string): boolean {
  if (typeof header !== 'string' || !/^sha256=[0-9a-f]{64}$/i.test(header)) return false;
  const given = Buffer.from(header.slice('sha256='.length).toLowerCase(), 'hex');
  const wanted = createHmac('sha256', secret).update(raw).digest();
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/** The alert actions that mean a secret is exposed now (resolutions and validity checks are not reports). */
export const REPORTING_ACTIONS = ['created', 'reopened', 'publicly_leaked'] as const;

/** GitHub's `secret_scanning_alert` webhook: the alert carries no secret, only where to fetch it. */
export const githubAlertEventSchema = z
  .object({
    action: z.string().min(1).max(40),
    alert: z
      .object({
        number: z.number().int().positive(),
        secret_type: z.string().min(1).max(200),
        html_url: z.string().url().max(2000).optional(),
      })
      .passthrough(),
    repository: z.object({ full_name: z.string().regex(/^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/, "must be 'owner/repo'") }).passthrough(),
  })
  .passthrough();

/** The generic form, for other scanners (e.g. gitleaks output a pipeline relays), signed the same way. */
export const genericReportSchema = z
  .object({
    secret: z.string().min(8, 'must be at least 8 characters (a shorter value matches too much)').max(10_000),
    type: z.string().min(1, 'must not be empty').max(200),
    location: z.string().min(1, 'must not be empty').max(2000),
  })
  .strict();

/** What the rest of the gateway learns of a report: never the value. */
export interface LeakReport {
  /** `sha256:<first 128 bits>`, as evidence records every credential the gateway delivered. */
  fingerprint: string;
  secretType: string;
  location: string;
  reporter: 'github' | 'generic';
  reportedAt: string;
}

/** The workflow and evidence key of a report: one per fingerprint, so a repeated report is the same one. */
export function leakKey(fingerprint: string): string {
  return `leak-${fingerprint.replace(/^sha256:/, '')}`;
}
