import { createHmac, timingSafeEqual } from 'node:crypto';

/** How far a sender's clock may drift before a delivery counts as a replay. */
export const MAX_TIMESTAMP_SKEW_SECONDS = 300;

export const SIGNATURE_HEADER = 'x-changegate-signature';
export const TIMESTAMP_HEADER = 'x-changegate-timestamp';
export const EVENT_ID_HEADER = 'x-changegate-event-id';

/**
 * HMAC-SHA256 over `<timestamp>.<raw body>`, keyed with the UTF-8 bytes of the secret, Base64-encoded:
 * the same bytes ServiceNow's global GlideCertificateEncryption.generateMac(base64(secret), "HmacSHA256", data) yields.
 */
export function signWebhook(secret: string, timestamp: string, rawBody: Buffer): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(Buffer.concat([Buffer.from(`${timestamp}.`, 'utf8'), rawBody]))
    .digest('base64');
}

export type SignatureCheck =
  | { ok: true }
  | { ok: false; reason: 'missing-signature' | 'missing-timestamp' | 'malformed-timestamp' | 'stale-timestamp' | 'bad-signature' };

export function verifyWebhookSignature(args: {
  secret: string;
  rawBody: Buffer;
  signature: string | undefined;
  timestamp: string | undefined;
  nowSeconds: number;
}): SignatureCheck {
  const { secret, rawBody, signature, timestamp, nowSeconds } = args;
  if (!signature) return { ok: false, reason: 'missing-signature' };
  if (!timestamp) return { ok: false, reason: 'missing-timestamp' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'malformed-timestamp' };
  if (Math.abs(nowSeconds - Number(timestamp)) > MAX_TIMESTAMP_SKEW_SECONDS) return { ok: false, reason: 'stale-timestamp' };
  const expected = Buffer.from(signWebhook(secret, timestamp, rawBody), 'base64');
  const given = Buffer.from(signature.trim(), 'base64');
  // A wrong length reveals nothing secret (every valid MAC is 32 bytes); equal lengths compare in constant time.
  const same = given.length === expected.length && timingSafeEqual(given, expected);
  return same ? { ok: true } : { ok: false, reason: 'bad-signature' };
}
