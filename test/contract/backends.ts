import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll } from 'vitest';
import { connectRedis, type RedisLinks } from '../../src/adapters/redis/connection.js';
import { startRedis } from '../helpers/redis.js';

export const silentLogger = pino({ level: 'silent' });

/** A key prefix no other test uses, so tests sharing one Redis never see each other's keys. */
export const uniquePrefix = (): string => `sb-test:${randomUUID()}:`;

/** Where a port's implementation keeps its state: nowhere shared (memory) or one private Redis. */
export interface Backend<T, O> {
  /** What one more instance would build on this backend. */
  open(options: O): Promise<T>;
  /** Kills the backend's server; present only on a shared backend. */
  breakBackend?(): Promise<void>;
  /** Starts the killed server again, empty. */
  restoreBackend?(): Promise<void>;
  close(): Promise<void>;
}

/** One backend a contract suite runs against. */
export interface BackendKind<T, O> {
  name: string;
  /** Instances opened on one backend see each other's state. */
  shared: boolean;
  start(): Promise<Backend<T, O>>;
}

/** The in-memory implementation: nothing shared, nothing to break. */
export function memoryKind<T, O>(make: (options: O) => T): BackendKind<T, O> {
  return {
    name: 'memory',
    shared: false,
    start: () => Promise.resolve({ open: (options) => Promise.resolve(make(options)), close: () => Promise.resolve() }),
  };
}

/**
 * The Redis implementation over a private redis-server; each opened instance gets its own
 * connection, made the way an instance makes its command link (it fails fast while Redis is away).
 */
export function redisKind<T, O>(make: (redis: Redis, options: O) => T): BackendKind<T, O> {
  return {
    name: 'redis',
    shared: true,
    async start() {
      const server = await startRedis();
      const links: RedisLinks[] = [];
      return {
        async open(options) {
          const opened = await connectRedis(server.url, silentLogger);
          links.push(opened);
          return make(opened.pub, options);
        },
        breakBackend: () => server.kill(),
        restoreBackend: () => server.start(),
        async close() {
          for (const l of links.splice(0)) await l.close();
          await server.stop();
        },
      };
    },
  };
}

/** Starts a backend of `kind` before the enclosing describe block's tests and closes it after them. */
export function useBackend<T, O>(kind: BackendKind<T, O>): () => Backend<T, O> {
  let backend: Backend<T, O> | undefined;
  beforeAll(async () => {
    backend = await kind.start();
  });
  afterAll(() => backend?.close());
  return () => {
    if (!backend) throw new Error('useBackend: the backend starts in beforeAll; use it inside a test');
    return backend;
  };
}
