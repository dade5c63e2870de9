import { startCluster, type Cluster } from './instance.js';
import { createDatabase, type TestDatabase } from './postgres.js';
import { startRedis, type PrivateRedis } from './redis.js';

/** A private redis-server, a fresh PostgreSQL database, and N instances sharing both. */
export interface Stack {
  redis: PrivateRedis;
  db: TestDatabase;
  cluster: Cluster;
  /** The environment the instances were started with (REDIS_URL, DATABASE_URL and the extras). */
  env: Record<string, string>;
  /** Stops every instance and the redis-server and drops the database, whatever failed before. */
  stop(): Promise<void>;
}

/**
 * Starts the multi-instance test stack and returns it with its own cleanup. Anything started before a
 * failure is stopped before the error is rethrown, so a failed beforeAll leaves nothing running.
 */
export async function startStack(label: string, instances: number, extraEnv: Record<string, string> = {}): Promise<Stack> {
  const parts: { redis?: PrivateRedis; db?: TestDatabase; cluster?: Cluster } = {};
  const stop = async () => {
    await Promise.allSettled([parts.cluster?.stop()]);
    await Promise.allSettled([parts.redis?.stop(), parts.db?.drop()]);
  };
  try {
    parts.redis = await startRedis();
    parts.db = await createDatabase(label);
    const env = { REDIS_URL: parts.redis.url, DATABASE_URL: parts.db.url, ...extraEnv };
    parts.cluster = await startCluster(instances, env);
    return { redis: parts.redis, db: parts.db, cluster: parts.cluster, env, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
