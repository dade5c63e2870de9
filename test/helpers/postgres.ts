import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startTcpProxy, type TcpProxy, type TcpProxyOptions } from './tcp-proxy.js';

/** The machine's PostgreSQL (trust auth). Override with TEST_PG_URL. */
export const PG_ADMIN_URL = process.env['TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A connection URL fit to print: the password, if any, replaced by `***`. */
export const redactUrl = (url: string): string => url.replace(/\/\/([^:@/]+):[^@/]+@/, '//$1:***@');

/** The URL of database `name` on the server of `adminUrl`. */
export function databaseUrl(name: string, adminUrl = PG_ADMIN_URL): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Where the admin database is, and how to say so when it does not answer. */
export interface AdminOptions {
  /** @default PG_ADMIN_URL */
  url?: string;
  /** The variable that sets `url`, named in the error. @default 'TEST_PG_URL' */
  variable?: string;
  /** @default 5000 */
  connectTimeoutMs?: number;
}

/**
 * Runs `fn` on a fresh connection to the admin database and closes it. A server that does not
 * answer is an error naming it: the suites that need PostgreSQL never pass without it.
 */
export async function withAdmin<T>(fn: (admin: pg.Client) => Promise<T>, options: AdminOptions = {}): Promise<T> {
  const url = options.url ?? PG_ADMIN_URL;
  const admin = new pg.Client({ connectionString: url, connectionTimeoutMillis: options.connectTimeoutMs ?? 5000 });
  try {
    await admin.connect();
  } catch (err) {
    await admin.end().catch(() => undefined);
    throw new Error(`PostgreSQL is not reachable at ${redactUrl(url)} (${(err as Error).message}); start it or set ${options.variable ?? 'TEST_PG_URL'}`);
  }
  try {
    return await fn(admin);
  } finally {
    await admin.end().catch(() => undefined);
  }
}

export interface TestDatabase {
  url: string;
  name: string;
  /** The PostgreSQL server processes serving this database now (for CPU accounting). */
  backendPids(): Promise<number[]>;
  /** Drops the database, closing its connections; a second call does nothing. */
  drop(): Promise<void>;
}

/** A fresh database for one test file (or one bench run), dropped by drop(). */
export async function createDatabase(label = 'test', admin: AdminOptions = {}): Promise<TestDatabase> {
  const name = `switchboard_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  await withAdmin((c) => c.query(`CREATE DATABASE "${name}"`), admin);
  let dropped: Promise<void> | undefined;
  return {
    url: databaseUrl(name, admin.url),
    name,
    async backendPids() {
      const r = await withAdmin((c) => c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [name]), admin);
      return r.rows.map((x) => x.pid);
    },
    drop() {
      dropped ??= withAdmin(async (c) => void (await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)), admin);
      return dropped;
    },
  };
}

/** A fresh database reached through a TCP proxy, so a test can take PostgreSQL away and give it back. */
export interface ProxiedDatabase extends TestDatabase {
  /** Between the clients of `proxiedUrl` and PostgreSQL: cut() makes the database unreachable. */
  proxy: TcpProxy;
  /** `url` through the proxy: what the server under test is given. */
  proxiedUrl: string;
  /** Closes the proxy and drops the database. */
  drop(): Promise<void>;
}

export async function createProxiedDatabase(label: string, options: TcpProxyOptions = {}): Promise<ProxiedDatabase> {
  const db = await createDatabase(label);
  const target = new URL(db.url);
  let proxy: TcpProxy;
  try {
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432), options);
  } catch (err) {
    await db.drop();
    throw err;
  }
  const proxiedUrl = new URL(db.url);
  proxiedUrl.hostname = '127.0.0.1';
  proxiedUrl.port = String(proxy.port);
  return {
    ...db,
    proxy,
    proxiedUrl: proxiedUrl.toString(),
    async drop() {
      await proxy.close();
      await db.drop();
    },
  };
}
