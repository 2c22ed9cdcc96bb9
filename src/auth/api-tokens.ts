import { createHash, randomBytes } from 'node:crypto';
import { IsNull, type DataSource } from 'typeorm';
import { ApiToken } from '../persistence/entities/api-token.entity';
import { type Actor, isRole, type Principal, type Role } from './principal';

/** Token names: what operators type and logs show. `demo-` belongs to the launcher's demo tokens. */
export const TOKEN_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const DEMO_PREFIX = 'demo-';

/** `cg_` + 256 random bits: the prefix lets secret scanners recognise a leaked token. */
export function generateToken(): string {
  return `cg_${randomBytes(32).toString('base64url')}`;
}

/** The token is 256 random bits, so a plain SHA-256 is enough: there is nothing to brute-force, and no salt to keep. */
export function tokenSha256(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export interface ApiTokenInfo {
  name: string;
  roles: Role[];
  createdAt: string;
  createdBy: string;
  revokedAt: string | null;
  revokedBy: string | null;
}

export class TokenNameTaken extends Error {}

/** How a row's creator or revoker is written down. */
export function describeActor(actor: Actor): string {
  return `${actor.kind}:${actor.kind === 'person' ? actor.id : actor.name}`;
}

export class ApiTokenStore {
  constructor(private readonly ds: DataSource) {}

  /** Makes a token and returns it: the only time it exists outside the caller's hands is this return value. */
  async create(name: string, roles: Role[], createdBy: string): Promise<{ token: string; info: ApiTokenInfo }> {
    const token = generateToken();
    return { token, info: await this.register(name, token, roles, createdBy) };
  }

  /** Stores the hash of a token made elsewhere (the launcher's demo tokens). */
  async register(name: string, token: string, roles: Role[], createdBy: string): Promise<ApiTokenInfo> {
    if (!TOKEN_NAME.test(name)) throw new Error('token names are 1-64 of a-z 0-9 . _ -, starting with a letter or digit');
    const row = this.repo().create({
      name,
      tokenSha256: tokenSha256(token),
      roles: [...new Set(roles)].sort(),
      createdAt: new Date(),
      createdBy,
      revokedAt: null,
      revokedBy: null,
    });
    try {
      await this.repo().insert(row);
    } catch (err) {
      if (isDuplicateKey(err)) throw new TokenNameTaken(`a token named '${name}' already exists`, { cause: err });
      throw err;
    }
    return toInfo(row);
  }

  /**
   * Revokes by name. Revoking a revoked token changes nothing and returns it as it is; null when no token has the
   * name.
   */
  async revoke(name: string, revokedBy: string): Promise<ApiTokenInfo | null> {
    await this.repo().update({ name, revokedAt: IsNull() }, { revokedAt: new Date(), revokedBy });
    const row = await this.repo().findOne({ where: { name } });
    return row ? toInfo(row) : null;
  }

  async list(): Promise<ApiTokenInfo[]> {
    return (await this.repo().find({ order: { id: 'ASC' } })).map(toInfo);
  }

  /** The principal a presented token stands for; null when it is unknown or revoked. */
  async authenticate(token: string): Promise<Principal | null> {
    // Looked up by hash, so the comparison happens inside the index on a value the caller cannot steer byte by byte.
    const row = await this.repo().findOne({ where: { tokenSha256: tokenSha256(token) } });
    if (!row || row.revokedAt) return null;
    return { actor: { kind: 'token', id: row.id, name: row.name }, roles: new Set(row.roles.filter(isRole)) };
  }

  /** Rows by hash, for the launcher's bookkeeping of its demo tokens. */
  async findByHash(sha256: string): Promise<ApiTokenInfo | null> {
    const row = await this.repo().findOne({ where: { tokenSha256: sha256 } });
    return row ? toInfo(row) : null;
  }

  private repo() {
    return this.ds.getRepository(ApiToken);
  }
}

function toInfo(row: ApiToken): ApiTokenInfo {
  return {
    name: row.name,
    roles: row.roles.filter(isRole),
    createdAt: row.createdAt.toISOString(),
    createdBy: row.createdBy,
    revokedAt: row.revokedAt ? row.revokedAt.toISOString() : null,
    revokedBy: row.revokedBy,
  };
}

function isDuplicateKey(err: unknown): boolean {
  const e = err as { code?: string; driverError?: { code?: string } };
  return e?.code === 'ER_DUP_ENTRY' || e?.driverError?.code === 'ER_DUP_ENTRY';
}
