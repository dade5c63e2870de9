import { Redis } from 'ioredis';

/**
 * The arguments of a private, throwaway redis-server: loopback only, nothing kept on disk. Used by the
 * tests, the bench and `npm run cluster`, each of which runs the process its own way.
 */
export function privateRedisArgs(port: number, dir?: string): string[] {
  return ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...(dir ? ['--dir', dir] : []), '--loglevel', 'warning'];
}

/** Resolves true when a Redis on 127.0.0.1:`port` answers PING, false when it does not (yet). */
export async function redisAnswers(port: number): Promise<boolean> {
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
