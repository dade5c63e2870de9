import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import WebSocket from 'ws';
import { privateRedisArgs, redisAnswers } from '../../scripts/lib/redis.js';
import { freePort, onCleanup, startProcess, waitFor, type Proc } from './procs.js';

export const ROOT = resolve(import.meta.dirname, '../..');
/** The HS256 secret every bench server is started with (≥ 32 bytes, as Switchboard requires). */
export const BENCH_SECRET = 'switchboard-bench-secret-0123456789abcdef';

export type SystemName = 'switchboard' | 'reference' | 'raw';
/**
 * `sqlite`: each instance writes its own SQLite file (WAL, synchronous=NORMAL), for both systems;
 * `sqlite-shared`: one file for all the instances of a system (Switchboard's deferred transactions then
 * fail with SQLITE_BUSY and busy-waits block the event loop: see docs/performance.md);
 * `postgres`: Switchboard on one PostgreSQL database (the reference stays on SQLite: it is the recipe).
 */
export type StoreKind = 'sqlite' | 'sqlite-shared' | 'postgres';

export interface Watched {
  role: 'server' | 'redis' | 'postgres';
  name: string;
  pid: number;
}

export interface RunningSystem {
  name: SystemName;
  /** Base URLs, one per instance; clients are spread round-robin over them. */
  urls: string[];
  /** Whether send_message is acknowledged. */
  acks: boolean;
  /** Whether clients should ask for batched `new_messages` frames. */
  batch: boolean;
  /** The processes whose CPU and RSS count as "server side" (PostgreSQL backends looked up live). */
  watched(): Promise<Watched[]>;
  stop(): Promise<void>;
}

export interface SystemOptions {
  instances: number;
  channels: string[];
  store: StoreKind;
  /** REDIS_ADAPTER for Switchboard. */
  adapter?: string;
  /** Extra env for Switchboard instances (experiments). */
  env?: Record<string, string>;
  /** Extra node flags for the server processes (e.g. --cpu-prof). */
  nodeFlags?: string[];
  cwdForProfiles?: string;
  /** Switchboard build directory (A/B runs). @default dist */
  dist?: string;
  /** Switchboard clients ask for batched frames. @default true */
  batch?: boolean;
}

const ports = new WeakMap<Proc, number>();
const portOf = (p: Proc) => ports.get(p)!;

const baseEnv = (): Record<string, string> => ({
  PATH: process.env['PATH'] ?? '/usr/bin:/bin',
  HOME: process.env['HOME'] ?? '/root',
});

async function probeSocketIo(url: string): Promise<boolean> {
  return new Promise((res) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: false });
    const done = (ok: boolean) => {
      ws.terminate();
      res(ok);
    };
    ws.on('message', (d: Buffer) => done(d.toString().startsWith('0')));
    ws.on('error', () => done(false));
    setTimeout(() => done(false), 2000);
  });
}

/** A private redis-server on a free port (never the shared one). */
export async function startRedis(): Promise<{ url: string; proc: Proc; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-redis-'));
  const proc = startProcess('/usr/bin/redis-server', privateRedisArgs(port, dir), { name: 'redis' });
  await waitFor(async () => {
    if (!proc.alive) throw new Error(`redis-server exited: ${proc.output().slice(-500)}`);
    return redisAnswers(port);
  }, `redis-server on ${port}`);
  const stop = async () => {
    await proc.stop(1000);
    rmSync(dir, { recursive: true, force: true });
  };
  return { url: `redis://127.0.0.1:${port}`, proc, stop };
}

const PG_ADMIN = process.env['BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A database of our own on the machine's PostgreSQL, dropped by drop(). */
export async function createPgDatabase(): Promise<{ url: string; name: string; backendPids(): Promise<number[]>; drop(): Promise<void> }> {
  const name = `switchboard_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN, connectionTimeoutMillis: 5000 });
  await admin.connect().catch((err: Error) => {
    throw new Error(`PostgreSQL is not reachable at ${PG_ADMIN} (${err.message}); start it or set BENCH_PG_URL`);
  });
  await admin.query(`CREATE DATABASE "${name}"`);
  const url = new URL(PG_ADMIN);
  url.pathname = `/${name}`;
  let dropped = false;
  const drop = async () => {
    if (dropped) return;
    dropped = true;
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined);
    await admin.end().catch(() => undefined);
  };
  onCleanup(drop);
  return {
    url: url.toString(),
    name,
    async backendPids() {
      const r = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [name]);
      return r.rows.map((x) => x.pid);
    },
    drop,
  };
}

async function waitReady(proc: Proc, url: string, kind: 'readyz' | 'socketio'): Promise<void> {
  await waitFor(async () => {
    if (!proc.alive) throw new Error(`${proc.name} exited:\n${proc.output().slice(-2000)}`);
    if (kind === 'readyz') return (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200;
    return probeSocketIo(url);
  }, `${proc.name} to be ready`, 30_000);
}

export async function startSwitchboard(o: SystemOptions): Promise<RunningSystem> {
  const redis = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-switchboard-'));
  const database = o.store === 'postgres' ? await createPgDatabase() : undefined;
  const procs: Proc[] = [];
  const stop = async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await redis.stop();
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  };
  const off = onCleanup(stop);
  try {
    for (let i = 0; i < o.instances; i++) {
      const port = await freePort();
      const env = {
        ...baseEnv(),
        PORT: String(port),
        HOST: '127.0.0.1',
        INSTANCE_ID: `sb${i + 1}`,
        JWT_SECRET: BENCH_SECRET,
        REDIS_URL: redis.url,
        REDIS_ADAPTER: o.adapter ?? 'sharded',
        DATA_DIR: join(dir, `i${i + 1}`),
        DATABASE_URL: database
          ? database.url
          : o.store === 'sqlite-shared'
            ? `sqlite:${join(dir, 'switchboard.db')}`
            : `sqlite:${join(dir, `i${i + 1}`, 'switchboard.db')}`,
        DEFAULT_CHANNELS: o.channels.join(','),
        LOG_LEVEL: 'warn',
        DEMO: 'false',
        RATE_LIMIT_MESSAGES: '100000000/1s',
        RATE_LIMIT_EVENTS: '100000000/1s',
        RATE_LIMIT_HANDSHAKES: '100000000/1s',
        MAX_CONNECTIONS_PER_USER: '100000',
        ...o.env,
      };
      const proc = startProcess(process.execPath, [...(o.nodeFlags ?? []), join(resolve(ROOT, o.dist ?? 'dist'), 'cli.js'), 'serve'], {
        name: `switchboard-${i + 1}`,
        env,
        cwd: o.cwdForProfiles ?? ROOT,
      });
      ports.set(proc, port);
      procs.push(proc);
      // One at a time: the instances migrate the same database on start-up.
      await waitReady(proc, `http://127.0.0.1:${port}`, 'readyz');
    }
  } catch (err) {
    off();
    await stop();
    throw err;
  }
  return {
    name: 'switchboard',
    urls: procs.map((p) => `http://127.0.0.1:${portOf(p)}`),
    acks: true,
    batch: o.batch ?? true,
    async watched() {
      const w: Watched[] = procs.map((p) => ({ role: 'server', name: p.name, pid: p.pid }));
      w.push({ role: 'redis', name: 'redis', pid: redis.proc.pid });
      if (database) for (const pid of await database.backendPids().catch(() => [])) w.push({ role: 'postgres', name: `pg-${pid}`, pid });
      return w;
    },
    async stop() {
      off();
      await stop();
    },
  };
}

async function startPlain(script: string, label: 'reference' | 'raw', o: SystemOptions): Promise<RunningSystem> {
  const redis = label === 'reference' ? await startRedis() : undefined;
  const dir = mkdtempSync(join(tmpdir(), `sb-bench-${label}-`));
  const procs: Proc[] = [];
  const n = label === 'raw' ? 1 : o.instances;
  const stop = async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  const off = onCleanup(stop);
  try {
    for (let i = 0; i < n; i++) {
      const port = await freePort();
      const proc = startProcess(process.execPath, [...(o.nodeFlags ?? []), join(ROOT, script)], {
        name: `${label}-${i + 1}`,
        env: {
          ...baseEnv(),
          PORT: String(port),
          HOST: '127.0.0.1',
          JWT_SECRET: BENCH_SECRET,
          ...(redis ? { REDIS_URL: redis.url } : {}),
          // The recipe's database: SQLite (WAL, synchronous=NORMAL), a file per instance unless shared.
          SQLITE_PATH: o.store === 'sqlite-shared' ? join(dir, 'reference.db') : join(dir, `reference-${i + 1}.db`),
          LOG_LEVEL: 'warn',
        },
        cwd: o.cwdForProfiles ?? ROOT,
      });
      ports.set(proc, port);
      procs.push(proc);
      await waitReady(proc, `http://127.0.0.1:${port}`, 'socketio');
    }
  } catch (err) {
    off();
    await stop();
    throw err;
  }
  return {
    name: label,
    urls: procs.map((p) => `http://127.0.0.1:${portOf(p)}`),
    acks: label === 'raw',
    batch: false,
    async watched() {
      const w: Watched[] = procs.map((p) => ({ role: 'server', name: p.name, pid: p.pid }));
      if (redis) w.push({ role: 'redis', name: 'redis', pid: redis.proc.pid });
      return w;
    },
    async stop() {
      off();
      await stop();
    },
  };
}

export function startSystem(name: SystemName, o: SystemOptions): Promise<RunningSystem> {
  switch (name) {
    case 'switchboard':
      return startSwitchboard(o);
    case 'reference':
      return startPlain('bench/reference/server.js', 'reference', o);
    case 'raw':
      return startPlain('bench/raw/server.js', 'raw', o);
  }
}
