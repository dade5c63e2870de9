import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import WebSocket from 'ws';
import { ROOT, startServerProcess } from '../../test/helpers/instance.js';
import { freePort } from '../../test/helpers/ports.js';
import { createDatabase, PG_ADMIN_URL, type TestDatabase } from '../../test/helpers/postgres.js';
import { Cleanups, startProcess, type Proc } from '../../test/helpers/processes.js';
import { startRedis, type PrivateRedis } from '../../test/helpers/redis.js';

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

/** What the bench started and has not stopped yet: run on exit, Ctrl-C or failure (bench/run.ts). */
export const benchCleanups = new Cleanups();

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

/** The backing services of one system, and the temp dir its servers keep their files in. */
interface Backing {
  dir: string;
  redis: PrivateRedis | undefined;
  database: TestDatabase | undefined;
}

interface Server {
  proc: Proc;
  url: string;
}

interface SystemSpec {
  name: SystemName;
  acks: boolean;
  batch: boolean;
  redis: boolean;
  postgres: boolean;
  /** Starts the servers one at a time, pushing each onto `servers` as soon as it runs. */
  startServers(backing: Backing, servers: Server[]): Promise<void>;
}

/**
 * Starts a system with its own cleanup: whatever came up is stopped by stop(), by a failure half-way,
 * or by benchCleanups (servers first, then PostgreSQL, Redis and the temp dir).
 */
async function startParts(spec: SystemSpec): Promise<RunningSystem> {
  const own = new Cleanups();
  const off = benchCleanups.add(() => own.run());
  const servers: Server[] = [];
  let backing: Backing;
  try {
    const dir = mkdtempSync(join(tmpdir(), `sb-bench-${spec.name}-`));
    own.add(() => rmSync(dir, { recursive: true, force: true }));
    const redis = spec.redis ? await startRedis({ stopGraceMs: 1000 }) : undefined;
    if (redis) own.add(() => redis.stop());
    const database = spec.postgres ? await createDatabase('bench', { url: process.env['BENCH_PG_URL'] ?? PG_ADMIN_URL, variable: 'BENCH_PG_URL' }) : undefined;
    if (database) own.add(() => database.drop());
    own.add(() => Promise.all(servers.map((s) => s.proc.stop('SIGTERM', 3000))));
    backing = { dir, redis, database };
    await spec.startServers(backing, servers);
  } catch (err) {
    off();
    await own.run();
    throw err;
  }
  return {
    name: spec.name,
    urls: servers.map((s) => s.url),
    acks: spec.acks,
    batch: spec.batch,
    async watched() {
      const w: Watched[] = servers.map((s) => ({ role: 'server', name: s.proc.name, pid: s.proc.pid }));
      if (backing.redis) w.push({ role: 'redis', name: 'redis', pid: backing.redis.proc.pid! });
      for (const pid of (await backing.database?.backendPids().catch(() => [])) ?? []) w.push({ role: 'postgres', name: `pg-${pid}`, pid });
      return w;
    },
    async stop() {
      off();
      await own.run();
    },
  };
}

function switchboardEnv(o: SystemOptions, { dir, redis, database }: Backing, i: number): Record<string, string> {
  return {
    ...baseEnv(),
    JWT_SECRET: BENCH_SECRET,
    REDIS_URL: redis!.url,
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
    // Every load-generator connection comes from 127.0.0.1.
    MAX_HTTP_CONNECTIONS_PER_IP: '10000000',
    RATE_LIMIT_READS: '100000000/1s',
    MAX_CONNECTIONS_PER_USER: '100000',
    ...o.env,
  };
}

export function startSwitchboard(o: SystemOptions): Promise<RunningSystem> {
  return startParts({
    name: 'switchboard',
    acks: true,
    batch: o.batch ?? true,
    redis: true,
    postgres: o.store === 'postgres',
    async startServers(backing, servers) {
      // One at a time: the instances migrate the same database on start-up.
      for (let i = 0; i < o.instances; i++) {
        const port = await freePort();
        const proc = await startServerProcess({
          id: `sb${i + 1}`,
          port,
          name: `switchboard-${i + 1}`,
          env: switchboardEnv(o, backing, i),
          cli: join(resolve(ROOT, o.dist ?? 'dist'), 'cli.js'),
          nodeFlags: o.nodeFlags ?? [],
          cwd: o.cwdForProfiles ?? ROOT,
          readyTimeoutMs: 30_000,
        });
        servers.push({ proc, url: `http://127.0.0.1:${port}` });
      }
    },
  });
}

function startPlain(script: string, label: 'reference' | 'raw', o: SystemOptions): Promise<RunningSystem> {
  return startParts({
    name: label,
    acks: label === 'raw',
    batch: false,
    redis: label === 'reference',
    postgres: false,
    async startServers({ dir, redis }, servers) {
      for (let i = 0; i < (label === 'raw' ? 1 : o.instances); i++) {
        const port = await freePort();
        const url = `http://127.0.0.1:${port}`;
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
        servers.push({ proc, url });
        await proc.waitUntil(() => probeSocketIo(url), `${proc.name} to be ready`, 30_000, 100);
      }
    },
  });
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
