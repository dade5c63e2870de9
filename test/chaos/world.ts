import pg from 'pg';
import { startInstance, type Instance } from '../helpers/instance.js';
import { freePort } from '../helpers/ports.js';
import { createProxiedDatabase, type ProxiedDatabase } from '../helpers/postgres.js';
import { Cleanups } from '../helpers/processes.js';
import { startRedis, type PrivateRedis } from '../helpers/redis.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

/** Exit code of the test-only crash-after-store hook (src/cli.ts). */
export const FAULT_EXIT_CODE = 86;

export type ExpectedExit = 'kill' | 'term' | 'fault';

/** One instance position: its port and name survive restarts. */
export interface Slot {
  name: string;
  port: number;
  instance: Instance | undefined;
  /** Set by a fault just before it ends the process on purpose. */
  expecting: ExpectedExit | undefined;
  /** Proxy between this instance and Redis (to cut this one instance off). */
  redisProxy: TcpProxy;
  /** Proxy between some clients and this instance (to drop those clients' network). */
  clientProxy: TcpProxy;
}

export interface Crash {
  slot: string;
  exit: number | string;
  expected: ExpectedExit | undefined;
  tail: string;
}

export interface World {
  redis: PrivateRedis;
  /** The instances reach it through `db.proxy` (which a fault cuts). */
  db: ProxiedDatabase;
  slots: Slot[];
  channels: readonly string[];
  /** Direct URLs of the instances. */
  urls(): string[];
  /** URLs through the client-side proxies. */
  proxiedUrls(): string[];
  /** Unexpected exits so far. */
  crashes: Crash[];
  /** A pool straight to PostgreSQL (not through the proxy) for verification. */
  pool: pg.Pool;
  restart(slot: Slot): Promise<void>;
  teardown(): Promise<void>;
}

export interface WorldOptions {
  instances: number;
  channels: readonly string[];
  log: (line: string) => void;
  extraEnv?: Record<string, string>;
}

/** The environment of the instance in `slot`: the store through its proxy, Redis through the slot's. */
const instanceEnv = (o: WorldOptions, db: ProxiedDatabase, slot: Slot): Record<string, string> => ({
  DATABASE_URL: db.proxiedUrl,
  REDIS_URL: `redis://127.0.0.1:${slot.redisProxy.port}`,
  DEFAULT_CHANNELS: o.channels.join(','),
  RATE_LIMIT_HANDSHAKES: '1000000/1s',
  MAX_HTTP_CONNECTIONS_PER_IP: '1000000',
  RATE_LIMIT_MESSAGES: '1000/10s',
  RATE_LIMIT_EVENTS: '100000/10s',
  MAX_CONNECTIONS_PER_USER: '10000',
  SWITCHBOARD_FAULT_CRASH_AFTER_STORE: 'signal',
  // The test-only crash hook arms only under NODE_ENV=test.
  NODE_ENV: 'test',
  LOG_LEVEL: 'warn',
  SHUTDOWN_NOTICE_MS: '1000',
  SHUTDOWN_TIMEOUT_MS: '15000',
  ...o.extraEnv,
});

/** Whether an exit is the one the fault that caused it announced. */
const asExpected = (expected: ExpectedExit | undefined, exit: number | string): boolean =>
  (expected === 'kill' && exit === 'SIGKILL') || (expected === 'term' && exit === 0) || (expected === 'fault' && exit === FAULT_EXIT_CODE);

/** N slots (named A, B, …) on free ports, each with its two proxies, closed by `cleanups`. */
async function createSlots(n: number, redisPort: number, cleanups: Cleanups): Promise<Slot[]> {
  const slots: Slot[] = [];
  for (let i = 0; i < n; i++) {
    const port = await freePort();
    const redisProxy = await startTcpProxy('127.0.0.1', redisPort);
    cleanups.add(() => redisProxy.close());
    const clientProxy = await startTcpProxy('127.0.0.1', port);
    cleanups.add(() => clientProxy.close());
    slots.push({ name: String.fromCharCode(65 + i), port, instance: undefined, expecting: undefined, redisProxy, clientProxy });
  }
  cleanups.add(() => Promise.all(slots.map((s) => s.instance?.kill())));
  return slots;
}

/**
 * The system under test, for real: a private redis-server, a fresh PostgreSQL database, N instances
 * as child processes (dist/cli.js), and the proxies the faults cut. teardown() ends all of it.
 */
export async function buildWorld(o: WorldOptions): Promise<World> {
  const cleanups = new Cleanups();
  let closing = false;
  const teardown = async () => {
    closing = true;
    await cleanups.run();
  };
  try {
    const redis = await startRedis();
    cleanups.add(() => redis.stop());
    const db = await createProxiedDatabase('chaos');
    cleanups.add(() => db.drop());
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    pool.on('error', () => undefined);
    cleanups.add(() => pool.end());

    const crashes: Crash[] = [];
    const slots = await createSlots(o.instances, redis.port, cleanups);

    const watch = (slot: Slot, inst: Instance) => {
      void inst.exited.then((exit) => {
        if (closing) return;
        const expected = slot.expecting;
        if (slot.instance === inst) slot.instance = undefined;
        slot.expecting = undefined;
        if (!asExpected(expected, exit)) {
          const tail = inst.output().split('\n').slice(-15).join('\n');
          crashes.push({ slot: slot.name, exit, expected, tail });
          o.log(`!! instance ${slot.name} exited unexpectedly (${exit}; expected ${expected ?? 'nothing'})\n${tail}`);
        }
      });
    };

    const restart = async (slot: Slot) => {
      const inst = await startInstance({ id: slot.name, port: slot.port, env: instanceEnv(o, db, slot) });
      slot.instance = inst;
      watch(slot, inst);
    };
    // One at a time: each runs the migrations on an empty database.
    for (const slot of slots) await restart(slot);

    return {
      redis,
      db,
      slots,
      channels: o.channels,
      urls: () => slots.map((s) => `http://127.0.0.1:${s.port}`),
      proxiedUrls: () => slots.map((s) => `http://127.0.0.1:${s.clientProxy.port}`),
      crashes,
      pool,
      restart,
      teardown,
    };
  } catch (err) {
    await teardown();
    throw err;
  }
}
