import { createHmac } from 'node:crypto';
import axios from 'axios';

/** Where escalations are announced: a URL the security team runs, and the secret each notification is signed with. */
export interface NotifySettings {
  url: string;
  secret: string;
}

export const NOTIFY_SIGNATURE_HEADER = 'x-changegate-signature';
export const NOTIFY_TIMESTAMP_HEADER = 'x-changegate-timestamp';
export const NOTIFY_EVENT_HEADER = 'x-changegate-event';
export const NOTIFY_DELIVERY_HEADER = 'x-changegate-delivery';

/**
 * `sha256=<hex HMAC-SHA256 over "<timestamp>.<raw body>">`: the timestamp is signed with the body, so a captured
 * notification cannot be replayed later with a fresh timestamp; the receiver checks both, on the raw bytes.
 */
export function notificationSignature(secret: string, timestamp: string, raw: Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(raw).digest('hex')}`;
}

/**
 * Sends one signed notification. `deliveryId` is stable across retries (the receiver's idempotency key). Throws with
 * the status (never the body, nor the secret) when the receiver does not take it.
 */
export async function sendNotification(settings: NotifySettings, event: string, deliveryId: string, payload: Record<string, unknown>, now = new Date()): Promise<void> {
  const raw = Buffer.from(JSON.stringify({ event, deliveryId, sentAt: now.toISOString(), ...payload }));
  const timestamp = String(Math.floor(now.getTime() / 1000));
  const res = await axios.post(settings.url, raw, {
    headers: {
      'content-type': 'application/json',
      [NOTIFY_EVENT_HEADER]: event,
      [NOTIFY_DELIVERY_HEADER]: deliveryId,
      [NOTIFY_TIMESTAMP_HEADER]: timestamp,
      [NOTIFY_SIGNATURE_HEADER]: notificationSignature(settings.secret, timestamp, raw),
    },
    timeout: 10_000,
    maxRedirects: 0,
    validateStatus: () => true,
    transformRequest: [(data: unknown) => data],
  }).catch((err: unknown) => {
    // The URL may carry a token of the receiver's: the error says what failed, not where.
    throw new Error(`could not reach the notification receiver: ${axios.isAxiosError(err) ? (err.code ?? 'network error') : 'network error'}`);
  });
  if (res.status < 200 || res.status >= 300) throw new Error(`the notification receiver answered HTTP ${res.status}`);
}
