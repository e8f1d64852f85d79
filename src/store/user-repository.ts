/**
 * Accounts, their mailboxes at creation, app passwords and API tokens.
 */
import type { Selectable } from 'kysely';
import { MAILBOXES, type Mode, type User } from '../core/types.ts';
import { StoreConflictError, type UserRepository } from './types.ts';
import type { UsersTable } from './schema.ts';
import { isUniqueViolation, num, toDate, type Db } from './db-util.ts';

function toUser(row: Selectable<UsersTable>): User {
  return {
    id: row.id,
    address: row.address,
    mode: row.mode,
    revealDeclined: num(row.reveal_declined) === 1,
    passwordHash: row.password_hash,
    createdAt: toDate(row.created_at),
  };
}

/**
 * IMAP UIDVALIDITY for a new mailbox: the current time in seconds, a positive
 * 32-bit value that differs from any earlier incarnation of the same mailbox.
 */
function newUidValidity(now: number): number {
  return Math.max(1, Math.floor(now / 1000) % 0x1_0000_0000);
}

export class KyselyUserRepository implements UserRepository {
  constructor(private readonly s: Db) {}

  async create(input: { address: string; passwordHash: string; mode: Mode }): Promise<User> {
    const now = Date.now();
    const address = input.address.toLowerCase();
    try {
      return await this.s.db.transaction().execute(async (tx) => {
        const row = await tx
          .insertInto('users')
          .values({ address, password_hash: input.passwordHash, mode: input.mode, created_at: now })
          .returningAll()
          .executeTakeFirstOrThrow();
        const uidValidity = newUidValidity(now);
        await tx
          .insertInto('mailboxes')
          .values(MAILBOXES.map((name) => ({ user_id: row.id, name, uid_validity: uidValidity, uid_next: 1 })))
          .execute();
        return toUser(row);
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new StoreConflictError(`The address ${address} already exists`);
      throw err;
    }
  }

  async findByAddress(address: string): Promise<User | undefined> {
    const row = await this.s.db.selectFrom('users').selectAll().where('address', '=', address.toLowerCase()).executeTakeFirst();
    return row && toUser(row);
  }

  async findById(id: number): Promise<User | undefined> {
    const row = await this.s.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toUser(row);
  }

  async list(): Promise<User[]> {
    const rows = await this.s.db.selectFrom('users').selectAll().orderBy('address').execute();
    return rows.map(toUser);
  }

  async setMode(userId: number, mode: Mode): Promise<void> {
    await this.s.db.updateTable('users').set({ mode }).where('id', '=', userId).execute();
  }

  async setPasswordHash(userId: number, passwordHash: string): Promise<void> {
    await this.s.db.updateTable('users').set({ password_hash: passwordHash }).where('id', '=', userId).execute();
  }

  async setRevealDeclined(userId: number, reveal: boolean): Promise<void> {
    await this.s.db
      .updateTable('users')
      .set({ reveal_declined: reveal ? 1 : 0 })
      .where('id', '=', userId)
      .execute();
  }

  async addAppPassword(userId: number, name: string, passwordHash: string): Promise<{ id: number }> {
    const row = await this.s.db
      .insertInto('app_passwords')
      .values({ user_id: userId, name, password_hash: passwordHash, created_at: Date.now() })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { id: row.id };
  }

  async listAppPasswords(userId: number): Promise<Array<{ id: number; name: string; passwordHash: string; createdAt: Date }>> {
    const rows = await this.s.db.selectFrom('app_passwords').selectAll().where('user_id', '=', userId).orderBy('id').execute();
    return rows.map((r) => ({ id: r.id, name: r.name, passwordHash: r.password_hash, createdAt: toDate(r.created_at) }));
  }

  async removeAppPassword(userId: number, id: number): Promise<boolean> {
    const res = await this.s.db.deleteFrom('app_passwords').where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
    return num(res.numDeletedRows) > 0;
  }

  async addToken(userId: number, tokenHash: string, expiresAt: Date): Promise<void> {
    try {
      await this.s.db
        .insertInto('api_tokens')
        .values({ token_hash: tokenHash, user_id: userId, expires_at: expiresAt.getTime(), created_at: Date.now() })
        .execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new StoreConflictError('This token already exists');
      throw err;
    }
  }

  /** Returns the token even when it has expired: the caller compares expiresAt with its clock. */
  async findToken(tokenHash: string): Promise<{ userId: number; expiresAt: Date } | undefined> {
    const row = await this.s.db.selectFrom('api_tokens').select(['user_id', 'expires_at']).where('token_hash', '=', tokenHash).executeTakeFirst();
    return row && { userId: row.user_id, expiresAt: toDate(row.expires_at) };
  }

  async removeToken(tokenHash: string): Promise<void> {
    await this.s.db.deleteFrom('api_tokens').where('token_hash', '=', tokenHash).execute();
  }

  async removeTokens(userId: number): Promise<number> {
    const res = await this.s.db.deleteFrom('api_tokens').where('user_id', '=', userId).executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}
