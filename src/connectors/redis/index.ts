import { z } from 'zod';
import { baseFields, envKey } from '../connector-config';
import { defineConnectorType, protectedNames } from '../connector-type';
import { createRedisConnector } from './redis-connector';
import { RedisGrammar } from './redis-grammar';

export const redisInstanceSchema = z
  .object({
    ...baseFields,
    type: z.literal('redis'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65_535).default(6379),
    /** The gateway's own ACL user (see redis-connector.ts for the rules it needs). */
    user: z.string().min(1),
    /** The password is never in this file: it names the environment variable that holds it. */
    passwordEnv: envKey,
    tls: z.boolean().default(false),
  })
  .strict();

export type RedisInstanceConfig = z.infer<typeof redisInstanceSchema>;

export const redisConnectorType = defineConnectorType<RedisInstanceConfig>({
  type: 'redis',
  schema: redisInstanceSchema,
  capabilities: { rotation: 'one-phase' },
  transport: (cfg) => [{ host: cfg.host, encrypted: cfg.tls === true, fix: 'set "tls": true' }],
  grammar: (cfg) => new RedisGrammar({ protectedAccounts: protectedNames(cfg, cfg.user) }),
  create: (cfg, secrets) =>
    createRedisConnector({
      name: cfg.name,
      host: cfg.host,
      port: cfg.port,
      user: cfg.user,
      password: secrets(cfg.passwordEnv),
      tls: cfg.tls,
      protectedAccounts: protectedNames(cfg, cfg.user),
    }),
});
