import { z } from 'zod';

/**
 * The gateway's whole configuration: environment variables, parsed once at start-up.
 * A missing or malformed variable stops the process with a message that names it.
 */
const boolFlag = z.enum(['true', 'false']).transform((v) => v === 'true');

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
  HOST: z.string().default('127.0.0.1'),
  DATABASE_URL: z
    .string()
    .url()
    .refine((u) => /^mysql:\/\//.test(u), 'must be a mysql:// URL')
    .default('mysql://root@127.0.0.1:3306/changegate'),
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('changegate'),
  // Workflows kept in the worker's sticky cache. Tickets wait for days, so the cache must not grow with the number
  // of open tickets: one beyond the bound is evicted and replayed from history when it next has work.
  TEMPORAL_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).max(100_000).default(1000),
  SERVICENOW_URL: z.string().url(),
  SERVICENOW_USERNAME: z.string().min(1),
  SERVICENOW_PASSWORD: z.string().min(1),
  SERVICENOW_WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters'),
  CHANGEGATE_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters'),
  CONNECTORS_CONFIG: z.string().min(1).default('config/connectors.demo.json'),
  WEBHOOK_MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(10 * 1024 * 1024).default(256 * 1024),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  /** Let the API run pending migrations at start (the launcher and the compose one-shot normally do). */
  RUN_MIGRATIONS: boolFlag.default('false'),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
  }
  return parsed.data;
}
