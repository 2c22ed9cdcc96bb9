import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** One grant an identity holds, and the tickets holding it (none: the target has it, no change accounts for it). */
export interface HeldGrant {
  grant: string;
  tickets: string[];
  /**
   * The tickets among them that hold it as standing access (no ttl, no until; the policy allows it), each with the
   * owner who answers for it: the owner's leaver revokes it, certification reviews it. Absent when there are none.
   */
  standing?: Array<{ ticket: string; owner: string }>;
}

/** Who set an owner or workload: the change's action, a connector's ownership rule, or an operator. */
export type AttributionSource = 'action' | 'rule' | 'operator';

/**
 * One identity the gateway knows, per (system, name, host): the inventory projection. Written only in the
 * transaction of the evidence row that justifies the change (src/inventory/inventory-store.ts).
 */
@Entity({ name: 'identity_inventory' })
@Index('uq_inventory_identity', ['system', 'name', 'host'], { unique: true })
export class InventoryIdentity {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ type: 'varchar', length: 100 })
  system!: string;

  @Column({ type: 'varchar', length: 256 })
  name!: string;

  /** MySQL's host part; '' on targets without one. */
  @Column({ type: 'varchar', length: 255, default: '' })
  host!: string;

  /** person, service_account, api_key, secret, certificate, workload_binding, agent */
  @Column({ type: 'varchar', length: 32 })
  type!: string;

  @Column({ type: 'varchar', length: 200, nullable: true })
  owner!: string | null;

  @Column({ name: 'owner_source', type: 'varchar', length: 16, nullable: true })
  ownerSource!: AttributionSource | null;

  /** The configuration item it serves (ServiceNow cmdb_ci). */
  @Column({ type: 'varchar', length: 200, nullable: true })
  workload!: string | null;

  @Column({ name: 'workload_source', type: 'varchar', length: 16, nullable: true })
  workloadSource!: AttributionSource | null;

  @Column({ name: 'created_by_ticket', type: 'varchar', length: 120, nullable: true })
  createdByTicket!: string | null;

  @Column({ type: 'json' })
  grants!: HeldGrant[];

  /** managed, protected, orphan, disabled, revoked */
  @Column({ type: 'varchar', length: 16 })
  status!: string;

  /** What the last verified read-back found (the evidence row's observed state). */
  @Column({ name: 'verified_state', type: 'json', nullable: true })
  verifiedState!: Record<string, unknown> | null;

  @Column({ name: 'verified_at', type: 'datetime', precision: 3, nullable: true })
  verifiedAt!: Date | null;

  /** What changed it last, for people: "granted", "revoked (policy: disable)", "not found by discovery", … */
  @Column({ name: 'last_event', type: 'varchar', length: 200 })
  lastEvent!: string;

  /** The evidence chain of that change: a ticket key, `inventory:<scanId>` or `inventory-identity:<id>`. */
  @Column({ name: 'last_ticket', type: 'varchar', length: 120, nullable: true })
  lastTicket!: string | null;

  /** When a step or an operator last changed it; discovery leaves alone what changed after it listed the target. */
  @Column({ name: 'changed_at', type: 'datetime', precision: 3 })
  changedAt!: Date;

  /** The last discovery that found it on the target. */
  @Column({ name: 'discovered_at', type: 'datetime', precision: 3, nullable: true })
  discoveredAt!: Date | null;

  @Column({ name: 'first_seen_at', type: 'datetime', precision: 3 })
  firstSeenAt!: Date;

  @Column({ name: 'updated_at', type: 'datetime', precision: 3 })
  updatedAt!: Date;
}
