import type { Logger } from 'pino';
import type { MessageStore } from '../../ports/message-store.js';
import { openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';

/** Opens the store a DATABASE_URL names: `sqlite:<path>` (or `sqlite::memory:`) or `postgres://…`. */
export function openStore(url: string, logger: Logger): MessageStore {
  if (url.startsWith('sqlite:')) return openSqliteStore(url.slice('sqlite:'.length), logger);
  return openPostgresStore(url, logger);
}
