/**
 * Sessions of the web app (src/web/). The browser holds a random id (256
 * bits); the store holds only its SHA-256, so neither a database copy nor a
 * log line opens a session. Each session has its own CSRF secret, which every
 * form of that session carries. Sessions slide: any use within the lifetime
 * extends it. A password change ends them all (accounts.ts setPassword).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { User } from '../core/types.ts';
import type { Store, WebSession } from '../store/types.ts';

/** How long an unused session lives. */
export const WEB_SESSION_TTL_MS = 14 * 24 * 3600 * 1000;
/** Activity is written at most this often per session (a page view is not a write). */
const TOUCH_EVERY_MS = 5 * 60 * 1000;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export function createWebSessions(store: Pick<Store, 'users' | 'webSessions'>, now: () => Date) {
  return {
    /** Opens a session; the returned `cookie` is the only copy of its id. */
    async open(user: User, meta: { userAgent: string; client: string }): Promise<{ cookie: string; session: WebSession }> {
      const cookie = randomBytes(32).toString('base64url');
      const at = now();
      const session = await store.webSessions.create({
        idHash: sha256(cookie),
        userId: user.id,
        csrfSecret: randomBytes(32).toString('base64url'),
        userAgent: meta.userAgent.slice(0, 300),
        client: meta.client.slice(0, 64),
        createdAt: at,
        lastSeenAt: at,
        expiresAt: new Date(at.getTime() + WEB_SESSION_TTL_MS),
      });
      return { cookie, session };
    },

    /** The live session (and its user) for a cookie's id, or undefined. */
    async resume(cookie: string): Promise<{ session: WebSession; user: User } | undefined> {
      if (!/^[A-Za-z0-9_-]{43}$/.test(cookie)) return undefined;
      const at = now();
      const session = await store.webSessions.find(sha256(cookie), at);
      if (!session) return undefined;
      const user = await store.users.findById(session.userId);
      if (!user) return undefined;
      if (at.getTime() - session.lastSeenAt.getTime() >= TOUCH_EVERY_MS) {
        await store.webSessions.touch(session.id, at, new Date(at.getTime() + WEB_SESSION_TTL_MS));
      }
      return { session, user };
    },

    list: (user: User) => store.webSessions.list(user.id, now()),

    /** Ends one of the user's sessions; false if it has none with that number. */
    end: (user: User, id: number) => store.webSessions.remove(user.id, id),
  };
}

export type WebSessions = ReturnType<typeof createWebSessions>;
