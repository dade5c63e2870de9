import type { Logger } from 'pino';
import type { Broadcaster } from '../ports/broadcaster.js';
import type { MessageStore } from '../ports/message-store.js';
import type { Presence } from '../ports/presence.js';
import type { RateLimiter } from '../ports/rate-limiter.js';
import type { Rooms } from '../ports/rooms.js';
import { ChannelAccess } from './access.js';
import { Channels } from './channels.js';
import { Membership, type MembershipDeps } from './membership.js';
import { Messaging, type MessagingDeps } from './messaging.js';
import { ReadBudget } from './read-budget.js';

export type { Session } from './session.js';

export interface ChatDeps
  extends Pick<MessagingDeps, 'onStoreBatch' | 'onStored' | 'afterStore'>,
    Pick<MembershipDeps, 'presenceMaxUsers' | 'presenceCacheMs' | 'noticeIntervalMs'> {
  store: MessageStore;
  presence: Presence;
  broadcaster: Broadcaster;
  rooms: Rooms;
  /** Messages per user. */
  messageLimiter: RateLimiter;
  /** Read points per user (history and presence, by their size), and how many one window has. */
  readLimiter: { limiter: RateLimiter; points: number };
  logger: Logger;
  /** Shown to the joiner in `joined`. */
  instanceId: string;
  /** Channels one connection may be in at once. */
  channelsPerConnection: number;
}

/**
 * The chat rules, every use case from start to end: who may join, send, read and see whom, and what
 * everyone else is told. No sockets, no SQL: it speaks to the ports, and the transport calls it.
 */
export class Chat {
  /** join, leave, typing, presence. */
  readonly membership: Membership;
  /** send, publish, history. */
  readonly messaging: Messaging;
  /** list, create, grant, revoke. */
  readonly channels: Channels;

  constructor(deps: ChatDeps) {
    const access = new ChannelAccess(deps.store);
    const { store, broadcaster, rooms } = deps;
    const readBudget = new ReadBudget(deps.readLimiter.limiter, deps.readLimiter.points);
    this.membership = new Membership({
      store,
      presence: deps.presence,
      broadcaster,
      rooms,
      access,
      logger: deps.logger,
      instanceId: deps.instanceId,
      channelsPerConnection: deps.channelsPerConnection,
      readBudget,
      presenceMaxUsers: deps.presenceMaxUsers,
      presenceCacheMs: deps.presenceCacheMs,
      noticeIntervalMs: deps.noticeIntervalMs,
    });
    this.messaging = new Messaging({
      store,
      broadcaster,
      rooms,
      access,
      messageLimiter: deps.messageLimiter,
      readBudget,
      onStoreBatch: deps.onStoreBatch,
      onStored: deps.onStored,
      afterStore: deps.afterStore,
    });
    this.channels = new Channels({ store, rooms, access });
  }
}
