import { createAdapter as createClassicAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import { createAdapter as createStreamsAdapter } from '@socket.io/redis-streams-adapter';
import type { Namespace } from 'socket.io';
import type { Adapter } from 'socket.io-adapter';
import type { RedisAdapterKind } from '../../config.js';
import type { RedisLinks } from './connection.js';

/**
 * The Socket.IO adapter that carries broadcasts between instances.
 * - `sharded` (default): Redis 7 sharded pub/sub with dynamic subscriptions: an instance only hears
 *   the rooms it has members in.
 * - `classic`: one pub/sub channel every instance hears (the recipe's choice).
 * - `streams`: a Redis stream; survives short disconnections by reading on from its last offset.
 * docs/decisions.md has the measurements behind the default.
 */
export function createRedisAdapter(kind: RedisAdapterKind, links: RedisLinks, prefix = 'switchboard'): (nsp: Namespace) => Adapter {
  switch (kind) {
    case 'sharded':
      return createShardedAdapter(links.pub, links.sub, { channelPrefix: prefix, subscriptionMode: 'dynamic' });
    case 'classic':
      return createClassicAdapter(links.pub, links.sub, { key: prefix });
    case 'streams':
      return createStreamsAdapter(links.sub, { streamName: `${prefix}:stream`, maxLen: 100_000 });
  }
}
