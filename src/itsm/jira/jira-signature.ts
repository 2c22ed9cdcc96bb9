import { createHmac, timingSafeEqual } from 'node:crypto';

export const HUB_SIGNATURE_HEADER = 'x-hub-signature';
export const WEBHOOK_ID_HEADER = 'x-atlassian-webhook-identifier';
export const WEBHOOK_RETRY_HEADER = 'x-atlassian-webhook-retry';

/** `sha256=<hex HMAC-SHA256 of the raw body>`, keyed with the secret's UTF-8 bytes, as Jira signs admin webhooks. */
export function signJiraWebhook(secret: string, raw: Buffer): string {
  return `sha256=${createHmac('sha256', Buffer.from(secret, 'utf8')).update(raw).digest('hex')}`;
}

export type JiraSignatureCheck = { ok: true } | { ok: false; reason: 'no-secret-configured' | 'missing-signature' | 'malformed-signature' | 'bad-signature' };

/**
 * Checks the raw bytes as received, before anything parses them. Jira's signature carries no timestamp (a retry may
 * come ~30 minutes late with the same bytes): replays are stopped by the identifier de-duplication and by versions.
 */
export function verifyJiraSignature(secret: string | undefined, raw: Buffer, header: string | undefined): JiraSignatureCheck {
  if (!secret) return { ok: false, reason: 'no-secret-configured' };
  if (!header) return { ok: false, reason: 'missing-signature' };
  const m = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!m) return { ok: false, reason: 'malformed-signature' };
  const given = Buffer.from((m[1] as string).toLowerCase(), 'hex');
  const expected = createHmac('sha256', Buffer.from(secret, 'utf8')).update(raw).digest();
  return given.length === expected.length && timingSafeEqual(given, expected) ? { ok: true } : { ok: false, reason: 'bad-signature' };
}
