import { configSchema, migrationDatabaseUrl } from '../config';
import { type EvidenceSealer, evidenceSealer } from '../evidence/evidence-seal';

/** The application account's database URL alone: a one-shot command (token-cli) may have nothing else configured. */
export function databaseUrlFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const parsed = configSchema.pick({ DATABASE_URL: true }).safeParse(env);
  if (!parsed.success) throw new Error(`DATABASE_URL: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data.DATABASE_URL;
}

/**
 * The migration account's URL (MIGRATION_DATABASE_URL, or DATABASE_URL where one account does both): migrations need
 * nothing else, and the rest of the configuration may be absent in a one-shot container.
 */
export function migrationDatabaseUrlFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const parsed = configSchema.pick({ DATABASE_URL: true, MIGRATION_DATABASE_URL: true }).safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${String(issue?.path[0] ?? 'MIGRATION_DATABASE_URL')}: ${issue?.message ?? 'invalid'}`);
  }
  return migrationDatabaseUrl(parsed.data);
}

/**
 * The evidence seal key, when set: the seal migration seals the evidence rows recorded before it with it (a database
 * holding such rows cannot be migrated without one). A malformed key is refused without quoting it.
 */
export function evidenceSealerForMigrations(env: NodeJS.ProcessEnv = process.env): EvidenceSealer | undefined {
  const parsed = configSchema.pick({ CHANGEGATE_EVIDENCE_SEAL_KEY: true }).safeParse(env);
  if (!parsed.success) throw new Error(`CHANGEGATE_EVIDENCE_SEAL_KEY: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data.CHANGEGATE_EVIDENCE_SEAL_KEY ? evidenceSealer(parsed.data.CHANGEGATE_EVIDENCE_SEAL_KEY) : undefined;
}
