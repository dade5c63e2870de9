import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { connectRedis, type RedisLinks } from '../../src/adapters/redis/connection.js';
import { startRedis, type PrivateRedis } from '../helpers/redis.js';

export const silentLogger = pino({ level: 'silent' });

/** A key prefix no other test uses, so tests sharing one Redis never see each other's keys. */
export const uniquePrefix = (): string => `sb-test:${randomUUID()}:`;

export interface RedisFixture {
  server: PrivateRedis;
  /** Kills the server: connections drop and new ones are refused. */
  kill(): Promise<void>;
  /** A new connection made the way an instance makes its command link (fails fast while Redis is away). */
  link(): Promise<Redis>;
  /** Closes every link, then stops the server. */
  close(): Promise<void>;
}

/** A private redis-server for one suite, and instance-like connections to it. */
export async function redisFixture(): Promise<RedisFixture> {
  const server = await startRedis();
  const links: RedisLinks[] = [];
  let killed = false;
  return {
    server,
    async kill() {
      killed = true;
      await server.kill();
    },
    async link() {
      const opened = await connectRedis(server.url, silentLogger);
      links.push(opened);
      return opened.pub;
    },
    async close() {
      for (const l of links.splice(0)) await l.close();
      // stop() waits for an 'exit' that a killed server has already emitted: bring it back first.
      if (killed) await server.start();
      await server.stop();
    },
  };
}
