import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** One accepted inbound delivery. The unique keys are what make a repeated delivery a no-op. */
@Entity({ name: 'webhook_deliveries' })
@Index('uq_delivery_event', ['source', 'eventId'], { unique: true })
@Index('uq_delivery_record_version', ['source', 'recordId', 'recordVersion'], { unique: true })
export class WebhookDelivery {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ type: 'varchar', length: 20 })
  source!: string;

  @Column({ name: 'event_id', type: 'varchar', length: 128 })
  eventId!: string;

  /** The source's record id (ServiceNow sys_id, Jira issue id). */
  @Column({ name: 'record_id', type: 'varchar', length: 64 })
  recordId!: string;

  /** The version the delivery carries (ServiceNow sys_mod_count). */
  @Column({ name: 'record_version', type: 'bigint' })
  recordVersion!: number;

  @Column({ name: 'ticket_number', type: 'varchar', length: 40 })
  ticketNumber!: string;

  @Column({ name: 'workflow_id', type: 'varchar', length: 200 })
  workflowId!: string;

  @Column({ name: 'received_at', type: 'datetime', precision: 3 })
  receivedAt!: Date;
}
