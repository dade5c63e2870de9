import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  Kysely,
  SqliteAdapter,
  SqliteDriver,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type SqliteDialectConfig,
} from 'kysely';
import type { Logger } from 'pino';
import type { StoreError } from '../../ports/message-store.js';
import { KyselyMessageStore } from './kysely-store.js';
import { SqliteMessageStore } from './sqlite-append.js';
import type { Database } from './schema.js';

const isLocked = (err: unknown): boolean => {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
};

const classify = (err: unknown): StoreError['kind'] => {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string') return 'internal';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED') || code.startsWith('SQLITE_IOERR')) {
    return 'unavailable';
  }
  if (code.startsWith('SQLITE_CONSTRAINT')) return 'conflict';
  return 'internal';
};

/**
 * Transactions take the write lock when they begin (BEGIN IMMEDIATE) rather than on their first
 * write: a process that shares the file then fails at once with SQLITE_BUSY, before anything is
 * written, and the store tries the whole transaction again later instead of failing halfway.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

/**
 * SQLite runs DDL in transactions, which Kysely's adapter does not claim. Claiming it makes the
 * Migrator run the pending migrations in one transaction that, begun IMMEDIATE, holds the write lock
 * before it reads which migrations have run: a second process migrating the same file waits, then
 * finds nothing left to do, instead of creating the same tables again.
 */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

const immediateSqliteDialect = (config: SqliteDialectConfig): Dialect => ({
  createAdapter: () => new TransactionalDdlSqliteAdapter(),
  createDriver: () => new ImmediateSqliteDriver(config),
  createQueryCompiler: () => new SqliteQueryCompiler(),
  createIntrospector: (db) => new SqliteIntrospector(db),
});

/**
 * Sets WAL mode. Two processes switching a fresh file at once can get SQLITE_BUSY without SQLite's
 * busy handler waiting, so the switch is tried again (synchronously: nothing is served yet) until
 * `deadline`.
 */
function switchToWal(database: BetterSqlite3.Database, deadline: number): void {
  for (;;) {
    try {
      database.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if (!isLocked(err) || Date.now() >= deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

export interface SqliteStoreOptions {
  /**
   * How long a call retries a database locked by another connection before failing with
   * StoreError('unavailable'). @default 5000
   */
  lockTimeoutMs?: number;
}

/**
 * Embedded SQLite (better-sqlite3). WAL with synchronous=NORMAL: a commit survives a process crash;
 * the last commits may be lost only if the machine itself loses power. Several instances on one host
 * may share the file (test/contract/sqlite-processes.test.ts); across hosts they must share PostgreSQL.
 *
 * better-sqlite3 is synchronous: its busy_timeout would wait for another process's lock on the event
 * loop, freezing every socket and probe. So busy_timeout is 0, a locked call fails at once, and the
 * store retries it asynchronously until `lockTimeoutMs` (KyselyStoreOptions.retryLocked).
 */
export function openSqliteStore(path: string, logger: Logger, options: SqliteStoreOptions = {}): KyselyMessageStore {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const lockTimeoutMs = options.lockTimeoutMs ?? 5000;
  // Opening happens before anything is served: here waiting for another process's lock (switching a
  // fresh file to WAL) blocks nobody. From then on, a lock fails at once and is retried without blocking.
  const database = new BetterSqlite3(path, { timeout: lockTimeoutMs });
  switchToWal(database, Date.now() + lockTimeoutMs);
  database.pragma('synchronous = NORMAL');
  database.pragma('foreign_keys = ON');
  database.pragma('busy_timeout = 0');
  const db = new Kysely<Database>({ dialect: immediateSqliteDialect({ database }) });
  const retryLocked = { isLocked, timeoutMs: lockTimeoutMs };
  return new SqliteMessageStore(database, { db, dialect: 'sqlite', logger, classify, retryLocked });
}
