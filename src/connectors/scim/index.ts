import { z } from 'zod';
import { baseFields, envKey, requireEncryptedTransport } from '../connector-config';
import { defineConnectorType, protectedNames } from '../connector-type';
import { createScimConnector } from './scim-connector';
import { ScimGrammar } from './scim-grammar';

export const scimInstanceSchema = z
  .object({
    ...baseFields,
    type: z.literal('scim'),
    /** The SCIM base URL including its version prefix, e.g. https://example.okta.com/scim/v2 */
    baseUrl: z.string().url(),
    /** The bearer token is never in this file: it names the environment variable that holds it. */
    tokenEnv: envKey,
    /** The SCIM user the token acts as, where the provider has one; /Me adds it at run time as well. */
    ownUserName: z.string().min(1).optional(),
    /**
     * Plain http sends the bearer token in clear: allowed to loopback (127.0.0.0/8, ::1, localhost), elsewhere only
     * when this or the common `allowPlain` says so.
     */
    allowPlainHttp: z.boolean().default(false),
    pageSize: z.number().int().min(1).max(1000).default(100),
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  })
  .strict();

export type ScimInstanceConfig = z.infer<typeof scimInstanceSchema>;

/**
 * The schema must stay a plain object (the registry's discriminated union needs one), so the rule that couples two
 * fields is checked here, when the API or the worker first builds this instance, and stops its start-up. The rule is
 * every connector's (requireEncryptedTransport); `allowPlainHttp` is this type's older name for `allowPlain`.
 */
function checkedTransport(cfg: ScimInstanceConfig): ScimInstanceConfig {
  const url = new URL(cfg.baseUrl);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`connector '${cfg.name}': baseUrl must be an http(s) URL`);
  const allowPlain = cfg.allowPlain === true || cfg.allowPlainHttp;
  requireEncryptedTransport({ name: cfg.name, allowPlain }, url.hostname, url.protocol === 'https:', 'baseUrl must be https');
  return cfg;
}

const protectedOf = (cfg: ScimInstanceConfig): string[] => (cfg.ownUserName ? protectedNames(cfg, cfg.ownUserName) : cfg.policy.protectedAccounts);

export const scimConnectorType = defineConnectorType<ScimInstanceConfig>({
  type: 'scim',
  schema: scimInstanceSchema,
  // Nothing beyond the interface: SCIM providers take passwords but never prove one back, so nothing can be rotated.
  capabilities: {},
  grammar: (cfg) => new ScimGrammar({ protectedAccounts: protectedOf(checkedTransport(cfg)) }),
  create: (cfg, secrets) => {
    checkedTransport(cfg);
    return createScimConnector({
      name: cfg.name,
      baseUrl: cfg.baseUrl,
      token: secrets(cfg.tokenEnv),
      protectedAccounts: protectedOf(cfg),
      pageSize: cfg.pageSize,
      timeoutMs: cfg.timeoutMs,
    });
  },
});
