import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { Actor } from '../../auth/principal';
import type { GrantDecision, Reviewer } from '../../certification/certification';

/**
 * One certification item: an identity whose access a person re-certifies because something changed (src/certification).
 * Opened with its grants as read back from the target; decided grant by grant, or by the policy at the due date.
 * Written in the transaction of the item's evidence row (chain `certification:<id>`).
 */
@Entity({ name: 'certification_items' })
@Index('ix_certification_status', ['status', 'id'])
export class CertificationItemRow {
  @PrimaryColumn({ type: 'char', length: 32 })
  id!: string;

  @Column({ type: 'varchar', length: 100 })
  system!: string;

  @Column({ type: 'varchar', length: 256 })
  name!: string;

  @Column({ type: 'varchar', length: 255, default: '' })
  host!: string;

  @Column({ name: 'identity_type', type: 'varchar', length: 32 })
  identityType!: string;

  @Column({ type: 'varchar', length: 200, nullable: true })
  owner!: string | null;

  @Column({ type: 'varchar', length: 200, nullable: true })
  workload!: string | null;

  /** The grants as read back from the target when the item was opened (canonical text). */
  @Column({ type: 'json' })
  grants!: string[];

  @Column({ name: 'trigger_type', type: 'varchar', length: 32 })
  triggerType!: string;

  /** What triggered it: a ticket key and step, a finding id, an inventory evidence row. */
  @Column({ type: 'varchar', length: 300 })
  reference!: string;

  @Column({ type: 'varchar', length: 500 })
  detail!: string;

  @Column({ type: 'json' })
  reviewer!: Reviewer;

  /** The reviewer as text (`role:…`, `group:…`, `user:…`), for the listing's filter. */
  @Column({ name: 'reviewer_key', type: 'varchar', length: 260 })
  reviewerKey!: string;

  @Column({ name: 'due_at', type: 'datetime', precision: 3 })
  dueAt!: Date;

  @Column({ name: 'on_timeout', type: 'varchar', length: 32 })
  onTimeout!: string;

  /** open, escalated, certified, revoking, revocation-failed. */
  @Column({ type: 'varchar', length: 32 })
  status!: string;

  @Column({ type: 'json', nullable: true })
  decisions!: GrantDecision[] | null;

  /** The person (or token) who decided; null while open and when the policy decided at the due date. */
  @Column({ name: 'decided_by', type: 'json', nullable: true })
  decidedBy!: Actor | null;

  @Column({ name: 'decided_at', type: 'datetime', precision: 3, nullable: true })
  decidedAt!: Date | null;

  @Column({ type: 'text', nullable: true })
  justification!: string | null;

  /** The change opened to revoke (`servicenow:CHG…`), once one is. */
  @Column({ name: 'change_key', type: 'varchar', length: 120, nullable: true })
  changeKey!: string | null;

  /** Why the revocation change could not be opened (status revocation-failed). */
  @Column({ name: 'revocation_error', type: 'varchar', length: 500, nullable: true })
  revocationError!: string | null;

  @Column({ name: 'opened_at', type: 'datetime', precision: 3 })
  openedAt!: Date;
}
