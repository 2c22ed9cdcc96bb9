import { z } from 'zod';
import { baseFields, envKey } from '../connector-config';
import { defineConnectorType, protectedNames } from '../connector-type';
import { createRabbitmqConnector } from './rabbitmq-connector';
import { RabbitmqGrammar } from './rabbitmq-grammar';

export const rabbitmqInstanceSchema = z
  .object({
    ...baseFields,
    type: z.literal('rabbitmq'),
    /** Management API base URL, e.g. http://127.0.0.1:15672 */
    url: z.string().url().refine((u) => /^https?:\/\//.test(u), 'must be an http(s) URL'),
    /** The gateway's own user: administrator tag, no vhost permissions (see rabbitmq-connector.ts). */
    user: z.string().min(1),
    /** The password is never in this file: it names the environment variable that holds it. */
    passwordEnv: envKey,
    /** Where rotation's read-back logs in over AMQP 0-9-1: the URL's host unless given. */
    amqpHost: z.string().min(1).optional(),
    amqpPort: z.number().int().min(1).max(65_535).default(5672),
  })
  .strict();

export type RabbitmqInstanceConfig = z.infer<typeof rabbitmqInstanceSchema>;

export const rabbitmqConnectorType = defineConnectorType<RabbitmqInstanceConfig>({
  type: 'rabbitmq',
  schema: rabbitmqInstanceSchema,
  capabilities: { rotation: 'one-phase' },
  // The management API gets the connector's password; the AMQP check sends a rotated one. Both need TLS off-host.
  transport: (cfg) => [
    { host: new URL(cfg.url).hostname, encrypted: cfg.url.startsWith('https:'), fix: 'use an https management URL' },
    { host: cfg.amqpHost ?? new URL(cfg.url).hostname, encrypted: false, fix: 'point amqpHost at a loopback listener (the rotation check speaks plain AMQP)' },
  ],
  grammar: (cfg) => new RabbitmqGrammar({ protectedAccounts: protectedNames(cfg, cfg.user) }),
  create: (cfg, secrets) =>
    createRabbitmqConnector({
      name: cfg.name,
      url: cfg.url,
      user: cfg.user,
      password: secrets(cfg.passwordEnv),
      amqpHost: cfg.amqpHost,
      amqpPort: cfg.amqpPort,
      protectedAccounts: protectedNames(cfg, cfg.user),
    }),
});
