/**
 * postmaster@ every served domain (RFC 5321 4.5.1: a server must accept it).
 * An account of that name wins; otherwise the mail goes to the configured
 * admin account (`postmaster` in the configuration), or, without one (or
 * when that account does not exist), to the first account created. The
 * local part is matched case-insensitively, as RFC 5321 asks for postmaster.
 */
import type { User } from '../core/types.ts';
import type { UserRepository } from '../store/types.ts';

export type PostmasterLookup = (address: string) => Promise<User | undefined>;

export function createPostmasterLookup(users: Pick<UserRepository, 'findByAddress' | 'list'>, domains: string[], configured: string | null): PostmasterLookup {
  const served = new Set(domains);
  return async (address) => {
    const at = address.lastIndexOf('@');
    if (at < 0 || address.slice(0, at).toLowerCase() !== 'postmaster' || !served.has(address.slice(at + 1).toLowerCase())) return undefined;
    const admin = configured === null ? undefined : await users.findByAddress(configured);
    if (admin) return admin;
    const all = await users.list();
    return all.reduce<User | undefined>((first, u) => (first === undefined || u.id < first.id ? u : first), undefined);
  };
}
