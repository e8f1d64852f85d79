/**
 * A CDP session on one target that playwright does not hand out (the
 * extension's service worker, its toolbar popup), through the browser
 * session: Target.attachToTarget without flatten, commands and events
 * wrapped in Target.sendMessageToTarget / receivedMessageFromTarget.
 */
import type { CDPSession } from 'playwright-core';

export interface TargetSession {
  send<T>(method: string, params?: unknown): Promise<T>;
  /** Every event of this target with that method name. */
  on(method: string, listener: (params: never) => void): void;
  detach(): Promise<void>;
}

type Message = { id?: number; method?: string; params?: unknown; result?: unknown; error?: { message: string } };

export async function attachTarget(cdp: CDPSession, targetId: string): Promise<TargetSession> {
  const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId, flatten: false })) as { sessionId: string };
  let next = 0;
  const waiting = new Map<number, (m: Message) => void>();
  const listeners = new Map<string, Array<(p: never) => void>>();
  let detached: string | null = null;
  cdp.on('Target.detachedFromTarget', (e: { sessionId: string }) => {
    if (e.sessionId !== sessionId) return;
    detached = 'the target went away (detached)';
    for (const answer of waiting.values()) answer({ error: { message: detached } });
  });
  cdp.on('Target.receivedMessageFromTarget', (e: { sessionId: string; message: string }) => {
    if (e.sessionId !== sessionId) return;
    const m = JSON.parse(e.message) as Message;
    if (m.id !== undefined) waiting.get(m.id)?.(m);
    else if (m.method) for (const l of listeners.get(m.method) ?? []) l(m.params as never);
  });
  return {
    async send<T>(method: string, params: unknown = {}) {
      if (detached) throw new Error(`${method}: ${detached}`);
      const id = ++next;
      const answer = new Promise<Message>((r) => waiting.set(id, r));
      await cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) });
      const m = await answer;
      waiting.delete(id);
      if (m.error) throw new Error(`${method}: ${m.error.message}`);
      return m.result as T;
    },
    on(method, listener) {
      listeners.set(method, [...(listeners.get(method) ?? []), listener]);
    },
    async detach() {
      await cdp.send('Target.detachFromTarget', { sessionId }).catch(() => undefined);
    },
  };
}
