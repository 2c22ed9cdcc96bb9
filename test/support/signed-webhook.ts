import { randomBytes } from 'node:crypto';
import axios, { type AxiosResponse } from 'axios';
import { signWebhook } from '../../src/itsm/servicenow/webhook-signature';

export interface SignedPostOptions {
  timestamp?: number;
  eventId?: string;
  /** Sent as is instead of the signature the secret gives (tests of refusals). */
  signature?: string;
}

/** POSTs raw bytes to a changegate webhook, signed as the ServiceNow rule and pipelines sign them. */
export function postSigned(url: string, raw: Buffer, secret: string, o: SignedPostOptions = {}): Promise<AxiosResponse> {
  const ts = String(o.timestamp ?? Math.floor(Date.now() / 1000));
  return axios.post(url, raw, {
    headers: {
      'content-type': 'application/json',
      'x-changegate-timestamp': ts,
      'x-changegate-event-id': o.eventId ?? randomBytes(16).toString('hex'),
      'x-changegate-signature': o.signature ?? signWebhook(secret, ts, raw),
    },
    validateStatus: () => true,
  });
}
