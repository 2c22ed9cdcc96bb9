import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/**
 * One step outcome, append-only and hash-chained per ticket. The database refuses UPDATE and DELETE on this table
 * (triggers from the migration), so the chain can only grow.
 */
@Entity({ name: 'evidence_records' })
@Index('uq_evidence_ticket_seq', ['ticketKey', 'seq'], { unique: true })
@Index('uq_evidence_ticket_step', ['ticketKey', 'stepId', 'outcome'], { unique: true })
export class EvidenceRecord {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  /** `servicenow:CHG0030001` */
  @Column({ name: 'ticket_key', type: 'varchar', length: 120 })
  ticketKey!: string;

  @Column({ type: 'int' })
  seq!: number;

  @Column({ name: 'step_id', type: 'varchar', length: 120 })
  stepId!: string;

  /** What this row proves: `revoked`, `granted`, `expired`, `failed`, ... */
  @Column({ type: 'varchar', length: 40 })
  outcome!: string;

  @Column({ name: 'action_kind', type: 'varchar', length: 40 })
  actionKind!: string;

  @Column({ type: 'varchar', length: 100 })
  system!: string;

  @Column({ type: 'json' })
  identity!: Record<string, unknown>;

  @Column({ name: 'desired_state', type: 'json' })
  desiredState!: Record<string, unknown>;

  @Column({ name: 'observed_state', type: 'json' })
  observedState!: Record<string, unknown>;

  @Column({ type: 'boolean' })
  verified!: boolean;

  @Column({ name: 'verification', type: 'json' })
  verification!: Record<string, unknown>;

  @Column({ type: 'varchar', length: 200 })
  actor!: string;

  @Column({ name: 'event_received_at', type: 'datetime', precision: 3 })
  eventReceivedAt!: Date;

  @Column({ name: 'started_at', type: 'datetime', precision: 3 })
  startedAt!: Date;

  @Column({ name: 'verified_at', type: 'datetime', precision: 3, nullable: true })
  verifiedAt!: Date | null;

  @Column({ name: 'recorded_at', type: 'datetime', precision: 3 })
  recordedAt!: Date;

  @Column({ name: 'prev_hash', type: 'char', length: 64 })
  prevHash!: string;

  @Column({ type: 'char', length: 64 })
  hash!: string;

  /** The exact bytes that were hashed, so anyone can recompute the chain without trusting column formatting. */
  @Column({ name: 'canonical', type: 'mediumtext' })
  canonical!: string;

  /**
   * The gateway's keyed seal over `hash` (src/evidence/evidence-seal.ts), written with the row. Null only on rows
   * recorded before sealing existed, whose seal is in evidence_backfilled_seals.
   */
  @Column({ type: 'varchar', length: 100, nullable: true })
  seal!: string | null;
}
