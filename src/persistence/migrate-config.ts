import { configSchema } from '../config';

/** Migrations need only the database URL; the rest of the configuration may be absent in a one-shot container. */
export function loadConfigFromEnvForMigrations(env: NodeJS.ProcessEnv = process.env): string {
  const parsed = configSchema.pick({ DATABASE_URL: true }).safeParse(env);
  if (!parsed.success) throw new Error(`DATABASE_URL: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data.DATABASE_URL;
}
