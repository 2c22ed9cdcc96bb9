import 'reflect-metadata';
import mysql from 'mysql2/promise';
import { DataSource } from 'typeorm';
import { ApiToken } from './entities/api-token.entity';
import { ClosureVerdictRecord } from './entities/closure-verdict.entity';
import { EvidenceRecord } from './entities/evidence-record.entity';
import { InventoryIdentity } from './entities/inventory-identity.entity';
import { DriftFinding } from './entities/drift-finding.entity';
import { CertificationItemRow } from './entities/certification-item.entity';
import { WebhookDelivery } from './entities/webhook-delivery.entity';
import { InitialSchema1763900000000 } from './migrations/1763900000000-initial-schema';
import { ClosureVerdicts1764100000000 } from './migrations/1764100000000-closure-verdicts';
import { ApiTokens1764000000000 } from './migrations/1764000000000-api-tokens';
import { IdentityInventory1764300000000 } from './migrations/1764300000000-identity-inventory';
import { TicketVersionsBigint1764450000000 } from './migrations/1764450000000-ticket-versions-bigint';
import { ItsmSyncCursors1764500000000 } from './migrations/1764500000000-itsm-sync-cursors';
import { DriftFindings1764600000000 } from './migrations/1764600000000-drift-findings';
import { EmergencyExceptions1764700000000 } from './migrations/1764700000000-emergency-exceptions';
import { ExceptionDecisionsOnce1764700000001 } from './migrations/1764700000001-exception-decisions-once';
import { CertificationItems1764800000000 } from './migrations/1764800000000-certification-items';
import { CertificationDecisionsOnce1764800000001 } from './migrations/1764800000001-certification-decisions-once';
import { EvidenceSeals1764900000000, evidenceSealsMigration } from './migrations/1764900000000-evidence-seals';
import { ClosureVerdictSeals1765000000000 } from './migrations/1765000000000-closure-verdict-seals';
import { TriggerDefiners1765100000000 } from './migrations/1765100000000-trigger-definers';
import type { EvidenceSealer } from '../evidence/evidence-seal';

export const ENTITIES = [EvidenceRecord, WebhookDelivery, ApiToken, ClosureVerdictRecord, InventoryIdentity, DriftFinding, CertificationItemRow];
export const MIGRATIONS = [
  InitialSchema1763900000000, ApiTokens1764000000000, ClosureVerdicts1764100000000, IdentityInventory1764300000000, TicketVersionsBigint1764450000000,
  ItsmSyncCursors1764500000000, DriftFindings1764600000000, EmergencyExceptions1764700000000, ExceptionDecisionsOnce1764700000001, CertificationItems1764800000000,
  CertificationDecisionsOnce1764800000001, EvidenceSeals1764900000000, ClosureVerdictSeals1765000000000, TriggerDefiners1765100000000,
];

const DATABASE_NAME = /^[A-Za-z0-9_]{1,64}$/;

export function databaseName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  if (!DATABASE_NAME.test(name)) throw new Error('DATABASE_URL must name a database of letters, digits and underscores');
  return name;
}

/**
 * `evidenceSealer`: the seal key, for the migration that seals the evidence rows recorded before sealing existed (a
 * database holding such rows cannot be migrated without it).
 */
export function createDataSource(url: string, opts: { evidenceSealer?: EvidenceSealer } = {}): DataSource {
  return new DataSource({
    type: 'mysql',
    url,
    entities: ENTITIES,
    migrations: MIGRATIONS.map((m) => (m === EvidenceSeals1764900000000 ? evidenceSealsMigration(opts.evidenceSealer) : m)),
    synchronize: false,
    migrationsRun: false,
    timezone: 'Z',
    dateStrings: false,
    supportBigNumbers: true,
    bigNumberStrings: true,
    extra: { connectionLimit: 10 },
  });
}

/** Creates the database named in the URL if it is missing (needs CREATE on the server; production pre-creates it). */
export async function ensureDatabase(url: string): Promise<void> {
  const name = databaseName(url);
  const server = new URL(url);
  server.pathname = '/';
  const conn = await mysql.createConnection({ uri: server.toString() });
  try {
    await conn.query(`CREATE DATABASE IF NOT EXISTS \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } finally {
    await conn.end();
  }
}

/**
 * Runs pending migrations as the account `url` names (the migration account: it holds the DDL the application
 * account does not), creating the database first if it is missing. Closes its connections before returning.
 */
export async function migrateDatabase(url: string, opts: { evidenceSealer?: EvidenceSealer } = {}): Promise<void> {
  await ensureDatabase(url);
  const ds = createDataSource(url, { evidenceSealer: opts.evidenceSealer });
  await ds.initialize();
  try {
    await ds.runMigrations({ transaction: 'each' });
  } finally {
    // A migration that refuses (the seal key missing, say) leaves no pool open behind it either.
    await ds.destroy();
  }
}

/** An initialised data source on a database already migrated (the application account's URL). */
export async function openDatabase(url: string): Promise<DataSource> {
  const ds = createDataSource(url);
  await ds.initialize();
  return ds;
}
