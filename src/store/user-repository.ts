/**
 * Accounts, their mailboxes at creation, app passwords and API tokens.
 */
import type { Selectable } from 'kysely';
import { MAILBOXES, type AppPassword, type AppPasswordScope, type Mode, type User } from '../core/types.ts';
import { StoreConflictError, type UserRepository } from './types.ts';
import type { AppPasswordsTable, UsersTable } from './schema.ts';
import { isUniqueViolation, num, toDate, type Db } from './db-util.ts';
import { preparedOf } from './prepared.ts';

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

function toAppPassword(row: Selectable<AppPasswordsTable>): AppPassword {
  return {
    id: row.id,
    publicId: row.public_id ?? '',
    name: row.name,
    scope: row.scope,
    createdAt: toDate(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : toDate(row.last_used_at),
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

  // Prepared (prepared.ts): every RCPT TO and every accepted message looks its recipients up.
  async findByAddress(address: string): Promise<User | undefined> {
    const [row] = await preparedOf(this.s.dialect).run(this.s.db, 'users.byAddress', [address.toLowerCase()], (v) =>
      this.s.db.selectFrom('users').selectAll().where('address', '=', v<string>(0)),
    );
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

  async addAppPassword(userId: number, input: { publicId: string; name: string; scope: AppPasswordScope; passwordHash: string }, max: number): Promise<AppPassword> {
    const now = Date.now();
    // Count and insert in one transaction, so racing creations cannot pass the limit
    // (PostgreSQL: the user row's lock serialises them; SQLite has one writer).
    return this.s.db.transaction().execute(async (tx) => {
      await tx.updateTable('users').set({ id: userId }).where('id', '=', userId).execute();
      const { n } = await tx.selectFrom('app_passwords').select((eb) => eb.fn.countAll<number | string>().as('n')).where('user_id', '=', userId).executeTakeFirstOrThrow();
      if (Number(n) >= max) throw new StoreConflictError(`At most ${max} app passwords per account`);
      const row = await tx
        .insertInto('app_passwords')
        .values({ user_id: userId, public_id: input.publicId, name: input.name, scope: input.scope, password_hash: input.passwordHash, created_at: now, last_used_at: null })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toAppPassword(row);
    });
  }

  async listAppPasswords(userId: number): Promise<AppPassword[]> {
    const rows = await this.s.db.selectFrom('app_passwords').selectAll().where('user_id', '=', userId).where('public_id', 'is not', null).orderBy('id').execute();
    return rows.map(toAppPassword);
  }

  async findAppPassword(publicId: string): Promise<(AppPassword & { userId: number; passwordHash: string }) | undefined> {
    const row = await this.s.db.selectFrom('app_passwords').selectAll().where('public_id', '=', publicId).executeTakeFirst();
    return row && { ...toAppPassword(row), userId: row.user_id, passwordHash: row.password_hash };
  }

  async findAppPasswordById(userId: number, id: number): Promise<AppPassword | undefined> {
    const row = await this.s.db.selectFrom('app_passwords').selectAll().where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
    return row && toAppPassword(row);
  }

  async touchAppPassword(id: number, at: Date): Promise<void> {
    await this.s.db.updateTable('app_passwords').set({ last_used_at: at.getTime() }).where('id', '=', id).execute();
  }

  async removeAppPassword(userId: number, id: number): Promise<boolean> {
    return this.s.db.transaction().execute(async (tx) => {
      // Explicitly, not only by the foreign key's cascade: the sessions must go whatever the database's settings.
      await tx.deleteFrom('api_tokens').where('user_id', '=', userId).where('app_password_id', '=', id).execute();
      const res = await tx.deleteFrom('app_passwords').where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
      return num(res.numDeletedRows) > 0;
    });
  }

  async removeAppPasswords(userId: number): Promise<number> {
    return this.s.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('api_tokens').where('user_id', '=', userId).where('app_password_id', 'is not', null).execute();
      const res = await tx.deleteFrom('app_passwords').where('user_id', '=', userId).executeTakeFirst();
      return num(res.numDeletedRows);
    });
  }

  async addToken(userId: number, tokenHash: string, expiresAt: Date, appPasswordId: number | null = null): Promise<void> {
    try {
      await this.s.db
        .insertInto('api_tokens')
        .values({ token_hash: tokenHash, user_id: userId, expires_at: expiresAt.getTime(), created_at: Date.now(), app_password_id: appPasswordId })
        .execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new StoreConflictError('This token already exists');
      throw err;
    }
  }

  /** Returns the token even when it has expired: the caller compares expiresAt with its clock. */
  async findToken(tokenHash: string): Promise<{ userId: number; expiresAt: Date; appPasswordId: number | null } | undefined> {
    const row = await this.s.db.selectFrom('api_tokens').select(['user_id', 'expires_at', 'app_password_id']).where('token_hash', '=', tokenHash).executeTakeFirst();
    return row && { userId: row.user_id, expiresAt: toDate(row.expires_at), appPasswordId: row.app_password_id };
  }

  async removeToken(tokenHash: string): Promise<void> {
    await this.s.db.deleteFrom('api_tokens').where('token_hash', '=', tokenHash).execute();
  }

  async removeTokens(userId: number): Promise<number> {
    const res = await this.s.db.deleteFrom('api_tokens').where('user_id', '=', userId).executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}
