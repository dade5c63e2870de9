import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import type { StoreError } from '../../ports/message-store.js';
import { KyselyMessageStore } from './kysely-store.js';
import type { Database } from './schema.js';

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN']);

const classify = (err: unknown): StoreError['kind'] => {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : '';
  if (code === '23505') return 'conflict';
  if (code === '23503') return 'not_found';
  // Class 08: connection exception; 57P0x: server shutting down; 53: out of resources.
  if (code.startsWith('08') || code.startsWith('57P') || code.startsWith('53') || NETWORK_CODES.has(code)) {
    return 'unavailable';
  }
  if (/timeout|terminated|Connection|ECONN/i.test(message)) return 'unavailable';
  return 'internal';
};

export interface PostgresStoreOptions {
  /** Pool size per instance. @default 10 */
  poolSize?: number;
  /** How long to wait for a connection before failing the call. @default 3000 */
  connectTimeoutMs?: number;
  /** Upper bound of one query, so a stalled server cannot hold a send forever. @default 10000 */
  queryTimeoutMs?: number;
}

/** PostgreSQL through a `pg` pool; safe for any number of instances writing at once. */
export function openPostgresStore(url: string, logger: Logger, options: PostgresStoreOptions = {}): KyselyMessageStore {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 3000,
    query_timeout: options.queryTimeoutMs ?? 10000,
    idleTimeoutMillis: 30000,
    application_name: 'switchboard',
  });
  // An idle client losing its connection is normal (server restart); without a listener it would crash us.
  pool.on('error', (err) => logger.warn({ reason: err.message }, 'idle PostgreSQL connection lost; the pool replaces it'));
  // The pool listens only while a client is idle. A client checked out (by Kysely, for a query or a
  // transaction) that loses its connection emits 'error' with no listener, which would crash the
  // process; the query in flight rejects with the same error, so this listener only has to exist.
  pool.on('connect', (client) => {
    client.on('error', (err) => logger.debug({ reason: err.message }, 'PostgreSQL connection lost'));
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return new KyselyMessageStore({ db, dialect: 'postgres', logger, classify });
}
