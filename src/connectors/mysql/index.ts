import { z } from 'zod';
import { baseFields, envKey } from '../connector-config';
import { defineConnectorType, protectedNames } from '../connector-type';
import { createMysqlConnector } from './mysql-connector';
import { MysqlGrammar } from './mysql-grammar';

export const mysqlInstanceSchema = z
  .object({
    ...baseFields,
    type: z.literal('mysql'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65_535).default(3306),
    user: z.string().min(1),
    /** The password is never in this file: it names the environment variable that holds it. */
    passwordEnv: envKey,
    /** TLS to the server (verified against the system CAs); required off loopback unless allowPlain is set. */
    tls: z.boolean().default(false),
  })
  .strict();

export type MysqlInstanceConfig = z.infer<typeof mysqlInstanceSchema>;

export const mysqlConnectorType = defineConnectorType<MysqlInstanceConfig>({
  type: 'mysql',
  schema: mysqlInstanceSchema,
  capabilities: { rotation: 'one-phase' },
  transport: (cfg) => [{ host: cfg.host, encrypted: cfg.tls, fix: 'set "tls": true' }],
  grammar: (cfg) => new MysqlGrammar({ protectedAccounts: protectedNames(cfg, cfg.user) }),
  create: (cfg, secrets) =>
    createMysqlConnector({
      name: cfg.name,
      host: cfg.host,
      port: cfg.port,
      user: cfg.user,
      password: secrets(cfg.passwordEnv),
      protectedAccounts: protectedNames(cfg, cfg.user),
      tls: cfg.tls,
    }),
});
