import { createHash } from 'node:crypto';

/**
 * The closure gate on a ServiceNow change, as integrations/servicenow/changegate-block-close.js reads it:
 * `u_identity_cleanup` says what the gateway concluded, `u_identity_cleanup_digest` which identity-actions text
 * that conclusion is about. The rule lets a change close only if the digest matches the actions being saved.
 */
export const GATE_FIELD = 'u_identity_cleanup';
export const GATE_DIGEST_FIELD = 'u_identity_cleanup_digest';

/**
 * Lower-case SHA-256 hex of the `u_identity_actions` text, computed as the block-close rule computes it: every
 * character from U+007F up is first written as `\uXXXX`, so the digest does not depend on the charset
 * ServiceNow's GlideDigest encodes with (the webhook rule escapes its body for the same reason).
 */
export function identityActionsDigest(text: string): string {
  const ascii = text.replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return createHash('sha256').update(ascii, 'utf8').digest('hex');
}
