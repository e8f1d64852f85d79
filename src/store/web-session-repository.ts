/** Web app sessions (migration 0008): one row per signed-in browser. */
import type { Selectable } from 'kysely';
import type { WebSession, WebSessionRepository } from './types.ts';
import type { WebSessionsTable } from './schema.ts';
import { num, toDate, type Db } from './db-util.ts';

const toSession = (r: Selectable<WebSessionsTable>): WebSession => ({
  id: num(r.id),
  idHash: r.id_hash,
  userId: num(r.user_id),
  csrfSecret: r.csrf_secret,
  userAgent: r.user_agent,
  client: r.client,
  createdAt: toDate(r.created_at),
  lastSeenAt: toDate(r.last_seen_at),
  expiresAt: toDate(r.expires_at),
});

export class KyselyWebSessionRepository implements WebSessionRepository {
  constructor(private readonly s: Db) {}

  async create(session: Omit<WebSession, 'id'>): Promise<WebSession> {
    const row = await this.s.db
      .insertInto('web_sessions')
      .values({
        id_hash: session.idHash,
        user_id: session.userId,
        csrf_secret: session.csrfSecret,
        user_agent: session.userAgent,
        client: session.client,
        created_at: session.createdAt.getTime(),
        last_seen_at: session.lastSeenAt.getTime(),
        expires_at: session.expiresAt.getTime(),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toSession(row);
  }

  async find(idHash: string, now: Date): Promise<WebSession | undefined> {
    const row = await this.s.db
      .selectFrom('web_sessions')
      .selectAll()
      .where('id_hash', '=', idHash)
      .where('expires_at', '>', now.getTime())
      .executeTakeFirst();
    return row ? toSession(row) : undefined;
  }

  async touch(id: number, lastSeenAt: Date, expiresAt: Date): Promise<void> {
    await this.s.db
      .updateTable('web_sessions')
      .set({ last_seen_at: lastSeenAt.getTime(), expires_at: expiresAt.getTime() })
      .where('id', '=', id)
      .execute();
  }

  async list(userId: number, now: Date): Promise<WebSession[]> {
    const rows = await this.s.db
      .selectFrom('web_sessions')
      .selectAll()
      .where('user_id', '=', userId)
      .where('expires_at', '>', now.getTime())
      .orderBy('last_seen_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    return rows.map(toSession);
  }

  async remove(userId: number, id: number): Promise<boolean> {
    const res = await this.s.db.deleteFrom('web_sessions').where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
    return num(res.numDeletedRows) > 0;
  }

  async removeAll(userId: number): Promise<number> {
    const res = await this.s.db.deleteFrom('web_sessions').where('user_id', '=', userId).executeTakeFirst();
    return num(res.numDeletedRows);
  }

  async prune(now: Date): Promise<number> {
    const res = await this.s.db.deleteFrom('web_sessions').where('expires_at', '<=', now.getTime()).executeTakeFirst();
    return num(res.numDeletedRows);
  }
}
