import type { Logger } from 'pino';
import type { MessageStore } from '../../ports/message-store.js';
import { openPostgresStore } from './postgres.js';
import { openSqliteStore, type SqliteStoreOptions } from './sqlite.js';

/** Opens the store a DATABASE_URL names: `sqlite:<path>` (or `sqlite::memory:`) or `postgres://…`. */
export function openStore(url: string, logger: Logger, sqlite: SqliteStoreOptions = {}): MessageStore {
  if (url.startsWith('sqlite:')) return openSqliteStore(url.slice('sqlite:'.length), logger, sqlite);
  return openPostgresStore(url, logger);
}
