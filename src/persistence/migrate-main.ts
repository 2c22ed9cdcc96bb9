import { openDatabase } from './data-source';
import { evidenceSealerForMigrations, loadConfigFromEnvForMigrations } from './migrate-config';

async function main(): Promise<void> {
  const url = loadConfigFromEnvForMigrations();
  const ds = await openDatabase(url, { migrate: true, evidenceSealer: evidenceSealerForMigrations() });
  await ds.destroy();
  console.log('changegate migrations: up to date');
}

main().catch((err: unknown) => {
  console.error('changegate migrations failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
