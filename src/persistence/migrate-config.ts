import { configSchema } from '../config';
import { type EvidenceSealer, evidenceSealer } from '../evidence/evidence-seal';

/** Migrations need only the database URL; the rest of the configuration may be absent in a one-shot container. */
export function loadConfigFromEnvForMigrations(env: NodeJS.ProcessEnv = process.env): string {
  const parsed = configSchema.pick({ DATABASE_URL: true }).safeParse(env);
  if (!parsed.success) throw new Error(`DATABASE_URL: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data.DATABASE_URL;
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
