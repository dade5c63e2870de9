import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

export interface RedisLinks {
  /** Commands and publishes; fails fast while disconnected instead of queueing without bound. */
  pub: Redis;
  /** Subscriptions; ioredis re-subscribes (including sharded SSUBSCRIBE) after every reconnect. */
  sub: Redis;
  close(): Promise<void>;
}

/** Reconnect with capped exponential backoff and jitter: 100 ms, 200 ms, … up to 3 s. */
export const redisRetryStrategy = (times: number): number =>
  Math.round(Math.min(3000, 100 * 2 ** Math.min(times - 1, 5)) * (0.75 + Math.random() * 0.5));

/**
 * Opens the two connections an instance needs, with explicit timeouts and backoff. Resolves once
 * both are ready, so start-up fails with a clear message when Redis is not there.
 */
export async function connectRedis(url: string, logger: Logger, options: { connectTimeoutMs?: number } = {}): Promise<RedisLinks> {
  const common: RedisOptions = {
    connectTimeout: 5000,
    retryStrategy: redisRetryStrategy,
    lazyConnect: true,
    keepAlive: 10_000,
  };
  const pub = new Redis(url, {
    ...common,
    connectionName: 'switchboard-pub',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 2000,
  });
  const sub = new Redis(url, {
    ...common,
    connectionName: 'switchboard-sub',
    maxRetriesPerRequest: null,
  });
  for (const [name, client] of [['pub', pub], ['sub', sub]] as const) {
    let wasDown = false;
    client.on('error', (err: Error) => {
      if (!wasDown) logger.warn({ link: name, reason: err.message }, 'Redis connection error; reconnecting with backoff');
      wasDown = true;
    });
    client.on('ready', () => {
      if (wasDown) logger.info({ link: name }, 'Redis connection restored');
      wasDown = false;
    });
  }
  const deadline = options.connectTimeoutMs ?? 10_000;
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`Redis at ${redact(url)} did not answer within ${deadline} ms`)), deadline).unref(),
  );
  try {
    await Promise.race([Promise.all([pub.connect(), sub.connect()]), timeout]);
  } catch (err) {
    pub.disconnect();
    sub.disconnect();
    throw err;
  }
  return {
    pub,
    sub,
    async close() {
      // QUIT politely, but never wait on a Redis that does not answer (paused, partitioned).
      const bounded = (p: Promise<unknown>) => Promise.race([p, new Promise((r) => setTimeout(r, 1000).unref())]);
      await Promise.allSettled([bounded(pub.quit()), bounded(sub.quit())]);
      pub.disconnect();
      sub.disconnect();
    },
  };
}

/** A URL without its password, for logs and error messages. */
export const redact = (url: string): string => url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
