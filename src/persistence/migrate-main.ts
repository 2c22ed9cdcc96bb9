import { migrateDatabase } from './data-source';
import { evidenceSealerForMigrations, migrationDatabaseUrlFromEnv } from './migrate-config';

async function main(): Promise<void> {
  await migrateDatabase(migrationDatabaseUrlFromEnv(), { evidenceSealer: evidenceSealerForMigrations() });
  console.log('changegate migrations: up to date');
}

main().catch((err: unknown) => {
  console.error('changegate migrations failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
