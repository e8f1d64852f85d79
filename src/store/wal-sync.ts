/**
 * Durable commits without blocking the event loop (SQLite).
 *
 * With `synchronous=FULL`, SQLite fsyncs the WAL inside COMMIT, on the
 * thread that runs it: Node's only thread. For the message group commit
 * that is most of the time an SMTP 250 costs, and nothing else runs
 * meanwhile, so the next batch cannot fill up (measured in bench/).
 *
 * Instead the message batch commits with `synchronous=NORMAL` (in WAL mode:
 * frames are written to the WAL but not fsynced; checkpoints still fsync the
 * WAL before copying it and the database after), and then the WAL file is
 * fdatasync'ed on libuv's thread pool before any caller is told "committed".
 * A frame on disk in the WAL is a committed transaction for SQLite's
 * recovery, so the promise keeps its meaning: durable before 250. Every
 * other write keeps `synchronous=FULL`.
 *
 * The first sync also starts the WAL checkpointer (wal-checkpointer.ts), so
 * that the checkpoints, too, leave the event loop once messages arrive.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { startWalCheckpointer, type WalCheckpointer } from './wal-checkpointer.ts';

export type WalSync = (() => Promise<void>) & {
  /** Starts the checkpointer, if not yet: for WAL writes this sync does not see (message-writer.ts). */
  checkpoints(): void;
  /** Ends the checkpointer, if one started, and closes the WAL's handle; before the store's connection closes. */
  close(): Promise<void>;
};

/** How often the open WAL handle is checked against the file at the path. */
const INODE_CHECK_MS = 1000;

export function createWalSync(databasePath: string): WalSync {
  const walPath = `${databasePath}-wal`;
  // Shared by concurrent callers: one open file, reopened if the WAL was replaced.
  let opened: Promise<{ handle: FileHandle; inode: number }> | null = null;
  const openWal = async () => {
    const handle = await open(walPath, 'r');
    return { handle, inode: (await handle.stat()).ino };
  };
  // When the inode was last compared (performance.now()).
  let checkedAt = Number.NEGATIVE_INFINITY;
  let checkpointer: WalCheckpointer | null = null;
  const checkpoints = () => {
    checkpointer ??= startWalCheckpointer(databasePath);
  };
  const sync = async () => {
    checkpoints();
    // The WAL is deleted only when the last connection closes, and ours is
    // open; the inode check still guards against syncing a replaced file. At
    // most once a second: a stat before every group commit was one more trip
    // through libuv's thread pool in front of each fdatasync (bench/results.md).
    opened ??= openWal();
    let wal = await opened;
    const now = performance.now();
    if (now - checkedAt < INODE_CHECK_MS) {
      await wal.handle.datasync();
      return;
    }
    checkedAt = now;
    const current = await stat(walPath);
    if (wal.inode !== current.ino) {
      const stale = wal.handle;
      opened = openWal();
      wal = await opened;
      await stale.close().catch(() => undefined);
    }
    await wal.handle.datasync();
  };
  return Object.assign(sync, {
    checkpoints,
    close: async () => {
      await checkpointer?.close();
      checkpointer = null;
      // Closed here, not left to the garbage collector (which warns, and keeps the descriptor until then).
      const wal = opened;
      opened = null;
      if (wal) await wal.then((w) => w.handle.close()).catch(() => undefined);
    },
  });
}
