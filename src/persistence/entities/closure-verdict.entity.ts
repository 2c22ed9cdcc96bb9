import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** One verdict a ticket's workflow published (append-only; the newest row per ticket is current). */
@Entity({ name: 'closure_verdicts' })
@Index('ix_closure_verdicts_ticket', ['ticketKey', 'id'])
export class ClosureVerdictRecord {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ name: 'ticket_key', type: 'varchar', length: 120 })
  ticketKey!: string;

  @Column({ name: 'evaluated_version', type: 'bigint' })
  evaluatedVersion!: number;

  @Column({ type: 'boolean' })
  allowed!: boolean;

  @Column({ type: 'json' })
  body!: unknown;

  @Column({ name: 'created_at', type: 'datetime', precision: 3 })
  createdAt!: Date;

  /** The gateway's seal over the verdict (src/closure/verdict-store.ts); null on verdicts published before sealing. */
  @Column({ type: 'varchar', length: 100, nullable: true })
  seal!: string | null;
}
