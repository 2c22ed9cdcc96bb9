import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * One drift finding: a difference between a target and the approved state the inventory holds, as scheduled (or
 * on-demand) discovery found it. Its id is stable (system, identity, type, grant), so a scan that finds it again
 * updates the same row; one that no longer finds it resolves it. Written in the transaction of the scan's evidence row.
 */
@Entity({ name: 'drift_findings' })
@Index('ix_drift_status', ['status', 'id'])
export class DriftFinding {
  @PrimaryColumn({ type: 'char', length: 32 })
  id!: string;

  @Column({ type: 'varchar', length: 100 })
  system!: string;

  @Column({ type: 'varchar', length: 256 })
  name!: string;

  @Column({ type: 'varchar', length: 255, default: '' })
  host!: string;

  /** orphan, extra-grant, missing-grant, re-enabled. */
  @Column({ name: 'finding_type', type: 'varchar', length: 32 })
  findingType!: string;

  @Column({ name: 'grant_text', type: 'varchar', length: 300, nullable: true })
  grant!: string | null;

  @Column({ type: 'varchar', length: 500 })
  detail!: string;

  /** open, resolved. */
  @Column({ type: 'varchar', length: 16 })
  status!: string;

  /** What the policy says to do with it: report, remediate. */
  @Column({ type: 'varchar', length: 16 })
  action!: string;

  /** The change opened to remediate it (`servicenow:CHG…`), once one is. */
  @Column({ name: 'change_key', type: 'varchar', length: 120, nullable: true })
  changeKey!: string | null;

  @Column({ name: 'first_seen_at', type: 'datetime', precision: 3 })
  firstSeenAt!: Date;

  @Column({ name: 'last_seen_at', type: 'datetime', precision: 3 })
  lastSeenAt!: Date;

  @Column({ name: 'resolved_at', type: 'datetime', precision: 3, nullable: true })
  resolvedAt!: Date | null;

  /** The evidence chain of the scan that last saw (or resolved) it. */
  @Column({ name: 'last_scan', type: 'varchar', length: 120 })
  lastScan!: string;
}
