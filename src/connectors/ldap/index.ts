import { z } from 'zod';
import { baseFields, envKey } from '../connector-config';
import { defineConnectorType, protectedNames } from '../connector-type';
import { ruleAttributes } from '../../inventory/ownership';
import { createLdapConnector } from './ldap-connector';
import { firstRdn, GROUP_CN, LdapGrammar } from './ldap-grammar';

/** A DN as an operator writes one in config: attr=value pairs, no escapes or specials (they are never needed here). */
const DN = /^[A-Za-z][A-Za-z0-9-]*=[^,=+\\"<>;#\p{Cc}]+(,[A-Za-z][A-Za-z0-9-]*=[^,=+\\"<>;#\p{Cc}]+)*$/u;
const dn = (example: string) => z.string().regex(DN, `must be a DN such as ${example}`);

export const ldapInstanceSchema = z
  .object({
    ...baseFields,
    type: z.literal('ldap'),
    url: z.string().regex(/^ldaps?:\/\/[^/\s?#]+\/?$/, 'must be ldap://host:port or ldaps://host:port'),
    baseDn: dn('dc=example,dc=com'),
    /** The connector's own entry; never the rootdn (see the least-privilege ACLs in ldap-connector.ts). */
    bindDn: dn('uid=changegate-connector,ou=services,dc=example,dc=com'),
    /** The bind password is never in this file: it names the environment variable that holds it. */
    passwordEnv: envKey,
    /** Where people (identity.type person) and service accounts live, relative to baseDn. */
    peopleOu: dn('ou=people').default('ou=people'),
    servicesOu: dn('ou=services').default('ou=services'),
    /** Grants are memberships of groupOfNames entries directly below this, relative to baseDn. */
    groupsOu: dn('ou=groups').default('ou=groups'),
    /** When set, the only group cns a ticket may grant. */
    allowedGroups: z.array(z.string().regex(GROUP_CN, 'must be a group cn (letters, digits, . _ -)')).min(1).optional(),
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  })
  .strict();

export type LdapInstanceConfig = z.infer<typeof ldapInstanceSchema>;

/** The uid (or other first RDN value) of the connector's own entry: always protected. */
function ownName(cfg: LdapInstanceConfig): string {
  return (firstRdn(cfg.bindDn)?.value ?? cfg.bindDn).toLowerCase();
}

export const ldapConnectorType = defineConnectorType<LdapInstanceConfig>({
  type: 'ldap',
  schema: ldapInstanceSchema,
  capabilities: { rotation: 'one-phase', directory: true },
  transport: (cfg) => [{ host: new URL(cfg.url).hostname, encrypted: cfg.url.startsWith('ldaps:'), fix: 'use ldaps://' }],
  grammar: (cfg) => new LdapGrammar({ protectedAccounts: protectedNames(cfg, ownName(cfg)), allowedGroups: cfg.allowedGroups }),
  create: (cfg, secrets) =>
    createLdapConnector({
      name: cfg.name,
      url: cfg.url,
      baseDn: cfg.baseDn,
      bindDn: cfg.bindDn,
      password: secrets(cfg.passwordEnv),
      peopleOu: cfg.peopleOu,
      servicesOu: cfg.servicesOu,
      groupsOu: cfg.groupsOu,
      protectedAccounts: protectedNames(cfg, ownName(cfg)),
      allowedGroups: cfg.allowedGroups,
      timeoutMs: cfg.timeoutMs,
      ownershipAttributes: ruleAttributes(cfg.policy.ownership),
    }),
});
