/** What every CardDAV handler gets: the hooks, the authenticated user and the request. */
import type { CardDavHooks, DavBook, DavUser } from './hooks.ts';
import type { DavPath } from './paths.ts';
import type { PropContext, Resource } from './props.ts';

export interface DavRequest {
  method: string;
  /** The path of the request URL, as sent (not decoded or normalised). */
  rawPath: string;
  /** Lower-case header names. */
  headers: Record<string, string | undefined>;
  /** The body as received; undefined when there was none. */
  body: Buffer | undefined;
}

export interface DavContext<U extends DavUser> extends PropContext {
  hooks: CardDavHooks<U>;
  user: U;
  /** Wall-clock budget of one REPORT (report.ts); REPORT_BUDGET_MS when absent. */
  reportBudgetMs?: number;
}

/** Resolves a path owned by the user to a resource, or undefined when it does not exist. */
export async function resolve<U extends DavUser>(ctx: DavContext<U>, p: DavPath): Promise<Resource | undefined> {
  switch (p.kind) {
    case 'root':
    case 'principals':
    case 'homes':
      return { kind: p.kind };
    case 'principal':
    case 'home':
      return { kind: p.kind, user: p.user };
    case 'book': {
      const book = await ctx.hooks.getBook(ctx.user, p.book);
      return book && { kind: 'book', user: p.user, book };
    }
    case 'card': {
      const card = await ctx.hooks.getCard(ctx.user, p.book, p.card);
      return card && { kind: 'card', user: p.user, card };
    }
  }
}

/** The user a path belongs to, if any (every such path must be the authenticated user's). */
export function ownerOf(p: DavPath): string | undefined {
  return 'user' in p ? p.user : undefined;
}

export type { DavBook };
