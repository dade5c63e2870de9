import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { requireBinary } from './binaries.js';
import { freePort } from './ports.js';
import { startProcess, type Proc } from './processes.js';

/**
 * The arguments of a private, throwaway redis-server: loopback only, nothing kept on disk.
 */
function privateRedisArgs(port: number, dir?: string): string[] {
  return ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...(dir ? ['--dir', dir] : []), '--loglevel', 'warning'];
}

/** Resolves true when a Redis on 127.0.0.1:`port` answers PING, false when it does not (yet). */
async function redisAnswers(port: number): Promise<boolean> {
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

export interface PrivateRedis {
  url: string;
  port: number;
  /** The redis-server process running now (a restart replaces it). */
  readonly proc: ChildProcess;
  /** A client for assertions; closed by stop(). */
  client(): Redis;
  /** SIGKILL now (data is lost: no persistence). */
  kill(): Promise<void>;
  /** Start again on the same port after kill(). */
  start(): Promise<void>;
  /** kill() then start(). */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: the server keeps its connections but answers nothing. */
  pause(): void;
  resume(): void;
  /** Ends the server (see `stopGraceMs`), closes the clients and removes its directory. */
  stop(): Promise<void>;
}

export interface RedisOptions {
  /** @default a free port */
  port?: number;
  /** A process group of its own (a terminal's Ctrl-C then reaches only the parent). @default false */
  detached?: boolean;
  /** stop() sends SIGTERM and allows this long before SIGKILL; 0: SIGKILL at once (nothing is on disk to save). @default 0 */
  stopGraceMs?: number;
}

/**
 * A redis-server of our own, for the tests that kill, pause or restart it, the bench and
 * `npm run cluster`. The shared server on 6379 is never touched. Killed when this process exits.
 */
export async function startRedis(options: RedisOptions = {}): Promise<PrivateRedis> {
  const bin = requireBinary('redis-server');
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'sb-redis-'));
  let proc: Proc | undefined;
  const clients: Redis[] = [];

  const launch = async () => {
    proc = startProcess(bin, privateRedisArgs(port, dir), { name: 'redis-server', detached: options.detached ?? false });
    await proc.waitUntil(() => redisAnswers(port), `redis-server on port ${port} to answer PING`);
  };
  const kill = async () => {
    // SIGKILL ends a paused (SIGSTOP) server too.
    await proc?.kill();
  };
  try {
    await launch();
  } catch (err) {
    await kill();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get proc() {
      return proc!.child;
    },
    client() {
      const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
    kill,
    start: launch,
    async restart() {
      await kill();
      await launch();
    },
    pause() {
      proc?.child.kill('SIGSTOP');
    },
    resume() {
      proc?.child.kill('SIGCONT');
    },
    async stop() {
      for (const c of clients) c.disconnect();
      proc?.child.kill('SIGCONT');
      if (options.stopGraceMs) await proc?.stop('SIGTERM', options.stopGraceMs);
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
