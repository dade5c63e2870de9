import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { privateRedisArgs, redisAnswers } from '../../scripts/lib/redis.js';
import { requireBinary } from './binaries.js';
import { freePort, waitFor } from './ports.js';

export interface PrivateRedis {
  url: string;
  port: number;
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
  stop(): Promise<void>;
}

/**
 * A redis-server of our own on a free port, for tests that kill, pause or restart it. The shared
 * server on 6379 is never touched.
 */
export async function startRedis(): Promise<PrivateRedis> {
  const bin = requireBinary('redis-server');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-redis-'));
  let proc: ChildProcess | undefined;
  const clients: Redis[] = [];

  const launch = async () => {
    proc = spawn(bin, privateRedisArgs(port, dir), { stdio: 'ignore' });
    const p = proc;
    await waitFor(async () => {
      if (p.exitCode !== null) throw new Error(`redis-server exited with ${p.exitCode}`);
      return redisAnswers(port);
    }, `redis-server on port ${port}`);
  };
  const kill = async () => {
    const p = proc;
    if (!p || p.exitCode !== null) return;
    if (p.signalCode === 'SIGSTOP') p.kill('SIGCONT');
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
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
      proc?.kill('SIGSTOP');
    },
    resume() {
      proc?.kill('SIGCONT');
    },
    async stop() {
      for (const c of clients) c.disconnect();
      proc?.kill('SIGCONT');
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
