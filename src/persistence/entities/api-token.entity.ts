import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/**
 * A named machine credential. Only the SHA-256 of the token is stored; the token itself is shown once, when it is
 * made. Rows are never deleted and only ever change by being revoked (a trigger from the migration refuses any
 * other UPDATE), so the table is also the record of which tokens existed and who made and revoked them.
 */
@Entity({ name: 'api_tokens' })
@Index('uq_api_tokens_name', ['name'], { unique: true })
@Index('uq_api_tokens_sha256', ['tokenSha256'], { unique: true })
export class ApiToken {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ type: 'varchar', length: 64 })
  name!: string;

  /** Hex SHA-256 of the token. */
  @Column({ name: 'token_sha256', type: 'char', length: 64 })
  tokenSha256!: string;

  @Column({ type: 'json' })
  roles!: string[];

  @Column({ name: 'created_at', type: 'datetime', precision: 3 })
  createdAt!: Date;

  /** `person:<sub>`, `token:<name>`, `cli:<os user>` or `launcher`. */
  @Column({ name: 'created_by', type: 'varchar', length: 255 })
  createdBy!: string;

  @Column({ name: 'revoked_at', type: 'datetime', precision: 3, nullable: true })
  revokedAt!: Date | null;

  @Column({ name: 'revoked_by', type: 'varchar', length: 255, nullable: true })
  revokedBy!: string | null;
}
