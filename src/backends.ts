import type { Logger } from 'pino';
import type { Config, RateSpec } from './config.js';
import { MemoryPresence } from './adapters/presence/memory.js';
import { RedisPresence } from './adapters/presence/redis.js';
import { FlexibleRateLimiter } from './adapters/ratelimit/flexible.js';
import { connectRedis, redact, type RedisLinks } from './adapters/redis/connection.js';
import { BrokerHealth } from './adapters/redis/health.js';
import { openStore } from './adapters/store/index.js';
import type { MessageStore } from './ports/message-store.js';
import type { Presence } from './ports/presence.js';
import type { RateLimiter } from './ports/rate-limiter.js';

/** The link to the other instances (Redis), as the rest of the app sees it. */
export interface BrokerLink {
  /** Whether Redis answers; always true without Redis. */
  isUp(): boolean;
  /** Subscribes to the transitions (there are none without Redis). */
  onChange(listener: (up: boolean) => void): void;
}

/** Everything the app keeps state in, opened and ready. */
export interface Backends {
  store: MessageStore;
  presence: Presence;
  /** Undefined for a single instance. */
  redis: RedisLinks | undefined;
  broker: BrokerLink;
  /** A rate limiter; with Redis its count is cluster-wide and falls back to local while the link is down. */
  limiter(name: string, spec: RateSpec): RateLimiter;
  /** Closes what was opened, last opened first. */
  close(): Promise<void>;
}

const ALWAYS_UP: BrokerLink = { isUp: () => true, onChange: () => undefined };

/** Opens the store (migrated, default channels created), Redis and presence; closes them again on failure. */
export async function openBackends(config: Readonly<Config>, logger: Logger): Promise<Backends> {
  const closers: (() => unknown)[] = [];
  const close = async () => {
    for (const c of closers.splice(0).reverse()) await Promise.resolve().then(c).catch(() => undefined);
  };
  try {
    const store: MessageStore = openStore(config.databaseUrl, logger.child({ component: 'store' }), { lockTimeoutMs: config.sqliteLockTimeoutMs });
    closers.push(() => store.close());
    await store.migrate();
    await store.ensurePublicChannels(config.defaultChannels);

    const redis = config.redisUrl ? await openRedis(config.redisUrl, logger) : undefined;
    if (redis) closers.push(() => redis.close());
    const broker = redis ? watchBroker(redis, logger, closers) : ALWAYS_UP;
    const presence: Presence = redis
      ? new RedisPresence(redis.pub, {
          instanceId: config.instanceId,
          ttlMs: config.presenceTtlMs,
          heartbeatMs: Math.floor(config.presenceTtlMs / 3),
          linkUp: broker.isUp,
          logger: logger.child({ component: 'presence' }),
        })
      : new MemoryPresence();
    await presence.start();
    closers.push(() => presence.close());

    const limiter = (name: string, spec: RateSpec) => new FlexibleRateLimiter(spec, { name, redis: redis?.pub, linkUp: broker.isUp });
    return { store, presence, redis, broker, limiter, close };
  } catch (err) {
    await close();
    throw err;
  }
}

function openRedis(url: string, logger: Logger): Promise<RedisLinks> {
  return connectRedis(url, logger.child({ component: 'redis' })).catch((err: Error) => {
    throw new Error(`Cannot reach Redis at ${redact(url)}: ${err.message.replace(/\.+$/, '')}. Start Redis or unset REDIS_URL for a single instance.`);
  });
}

/** Starts watching the link with PINGs; stopping is added to `closers`. */
function watchBroker(redis: RedisLinks, logger: Logger, closers: (() => unknown)[]): BrokerLink {
  const listeners: ((up: boolean) => void)[] = [];
  const health = new BrokerHealth(redis.pub, logger.child({ component: 'broker' }), (up) => {
    for (const l of listeners) l(up);
  });
  health.start();
  closers.push(() => health.stop());
  return { isUp: () => health.isUp, onChange: (l) => void listeners.push(l) };
}
