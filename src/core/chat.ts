import type { Logger } from 'pino';
import { ErrorCode, SwitchboardError, DEFAULT_PAGE, MAX_MISSED, MAX_PAGE, type HistoryResult, type JoinResult, type Message, type PresenceUser, type SendResult } from 'switchboard-client/protocol';
import type { Principal } from '../ports/authenticator.js';
import type { Broadcaster } from '../ports/broadcaster.js';
import { StoreError, type AppendResult, type Channel, type MessageDraft, type MessageStore } from '../ports/message-store.js';
import type { Presence } from '../ports/presence.js';
import type { RateLimiter } from '../ports/rate-limiter.js';
import { AppendBatcher } from './append-batcher.js';
import { TypingThrottle } from './typing-throttle.js';

/** What the core needs to know about the connection an event came from. */
export interface Session {
  readonly principal: Principal;
  isJoined(channelId: string): boolean;
}

export interface ChatDeps {
  store: MessageStore;
  presence: Presence;
  broadcaster: Broadcaster;
  /** Messages per user. */
  messageLimiter: RateLimiter;
  logger: Logger;
  /** Observes each store batch (metrics). */
  onStoreBatch?: (size: number, ms: number, failed: boolean) => void;
  /** Observes each stored send: whether it was a retry of a stored message. */
  onStored?: (duplicate: boolean) => void;
  /**
   * Test-only fault hook: runs after a message is stored and before it is broadcast (the chaos suite
   * crashes the process here). Never set in production.
   */
  afterStore?: (message: Message) => void;
}

const FORBIDDEN_MESSAGE = 'Access denied';
/** The user id of messages an admin publishes without naming a user. */
export const SYSTEM_USER = 'system';

/** Maps a store failure to the client-facing error; nothing of the cause leaks. */
export function storeFailure(err: unknown): SwitchboardError {
  if (err instanceof SwitchboardError) return err;
  if (err instanceof StoreError) {
    if (err.kind === 'unavailable') return new SwitchboardError(ErrorCode.UNAVAILABLE, 'Storage is unavailable; nothing was stored. Retry shortly.', { cause: err });
    if (err.kind === 'not_found') return new SwitchboardError(ErrorCode.FORBIDDEN, FORBIDDEN_MESSAGE, { cause: err });
  }
  return new SwitchboardError(ErrorCode.INTERNAL, 'Internal error', { cause: err });
}

/**
 * The chat rules: who may join, send, read and see whom. No sockets, no SQL: it speaks to the
 * ports, and the transport calls it.
 */
export class Chat {
  private readonly store: MessageStore;
  private readonly presence: Presence;
  private readonly broadcaster: Broadcaster;
  private readonly messageLimiter: RateLimiter;
  private readonly log: Logger;
  private readonly batcher: AppendBatcher;
  private readonly typingThrottle = new TypingThrottle(1000);
  private readonly onStored: ChatDeps['onStored'];
  private readonly afterStore: ChatDeps['afterStore'];
  /** Channels never change privacy and are never deleted, so a found channel can be remembered. */
  private readonly channelCache = new Map<string, Pick<Channel, 'id' | 'isPrivate'>>();

  constructor(deps: ChatDeps) {
    this.store = deps.store;
    this.presence = deps.presence;
    this.broadcaster = deps.broadcaster;
    this.messageLimiter = deps.messageLimiter;
    this.log = deps.logger;
    this.onStored = deps.onStored;
    this.afterStore = deps.afterStore;
    this.batcher = new AppendBatcher(deps.store, deps.onStoreBatch ? { onBatch: deps.onStoreBatch } : {});
  }

  /** Sends queued or being stored; the drain waits for zero. */
  get pendingWrites(): number {
    return this.batcher.pending;
  }

  /** Resolves when every accepted send has been stored (or failed). */
  writesSettled(): Promise<void> {
    return this.batcher.idle();
  }

  private async findChannel(channelId: string): Promise<Pick<Channel, 'id' | 'isPrivate'> | undefined> {
    const cached = this.channelCache.get(channelId);
    if (cached) return cached;
    const channel = await this.store.getChannel(channelId).catch((err) => Promise.reject(storeFailure(err)));
    if (channel) {
      if (this.channelCache.size > 50_000) this.channelCache.clear();
      this.channelCache.set(channelId, { id: channel.id, isPrivate: channel.isPrivate });
    }
    return channel;
  }

  /** Resolves when `principal` may read and join the channel; FORBIDDEN when not, or when it does not exist. */
  async authorize(principal: Principal, channelId: string): Promise<void> {
    const channel = await this.findChannel(channelId);
    if (!channel) throw new SwitchboardError(ErrorCode.FORBIDDEN, FORBIDDEN_MESSAGE);
    if (!channel.isPrivate || principal.isAdmin || principal.channels.includes(channelId)) return;
    const member = await this.store.isMember(channelId, principal.userId).catch((err) => Promise.reject(storeFailure(err)));
    if (!member) throw new SwitchboardError(ErrorCode.FORBIDDEN, FORBIDDEN_MESSAGE);
  }

  /**
   * The join's catch-up answer. Call it after the socket is in the room, so that a message stored in
   * between arrives live, in `missed`, or both (clients drop seqs they hold) and never in neither.
   */
  async catchUp(channelId: string, sinceSeq?: number): Promise<JoinResult> {
    try {
      if (sinceSeq === undefined) {
        const channel = await this.store.getChannel(channelId);
        return { channelId, lastSeq: channel?.lastSeq ?? 0 };
      }
      const [channel, page] = await Promise.all([
        this.store.getChannel(channelId),
        this.store.history(channelId, { afterSeq: sinceSeq, limit: MAX_MISSED }),
      ]);
      const lastSeq = Math.max(channel?.lastSeq ?? 0, page.messages.at(-1)?.seq ?? 0);
      return { channelId, lastSeq, missed: page.messages, hasMore: page.hasMore };
    } catch (err) {
      throw storeFailure(err);
    }
  }

  /** Stores and broadcasts a member's message. The session must have joined the channel. */
  async send(session: Session, input: Omit<MessageDraft, 'userId'>): Promise<SendResult> {
    if (!session.isJoined(input.channelId)) {
      throw new SwitchboardError(ErrorCode.FORBIDDEN, 'Join the channel before sending to it');
    }
    const decision = await this.messageLimiter.consume(session.principal.userId);
    if (!decision.allowed) {
      throw new SwitchboardError(ErrorCode.RATE_LIMITED, 'Too many messages; slow down', { retryAfterMs: decision.retryAfterMs });
    }
    return this.storeAndBroadcast({ ...input, userId: session.principal.userId });
  }

  /** Server-side publish (admin REST): as `userId`, or as the system user. */
  async publish(principal: Principal, channelId: string, input: { content: string; userId?: string | undefined; clientMessageId: string }): Promise<SendResult> {
    if (!principal.isAdmin) throw new SwitchboardError(ErrorCode.FORBIDDEN, FORBIDDEN_MESSAGE);
    const channel = await this.findChannel(channelId);
    if (!channel) throw new SwitchboardError(ErrorCode.NOT_FOUND, `No channel ${channelId}`);
    return this.storeAndBroadcast({ channelId, content: input.content, clientMessageId: input.clientMessageId, userId: input.userId ?? SYSTEM_USER });
  }

  private async storeAndBroadcast(draft: MessageDraft): Promise<SendResult> {
    let result: AppendResult;
    try {
      result = await this.batcher.append(draft);
    } catch (err) {
      throw storeFailure(err);
    }
    this.onStored?.(result.duplicate);
    this.afterStore?.(result.message);
    // A retry is broadcast again: its first broadcast may have been lost with a crashed instance.
    this.broadcaster.toChannel(draft.channelId, 'new_message', result.message);
    return result.duplicate ? { message: result.message, duplicate: true } : { message: result.message };
  }

  /** Relays a typing signal to the others in the room, at most once per second per user and channel. */
  typing(session: Session, channelId: string): { throttled: boolean } {
    if (!session.isJoined(channelId)) throw new SwitchboardError(ErrorCode.FORBIDDEN, 'Join the channel first');
    if (!this.typingThrottle.allow(session.principal.userId, channelId)) return { throttled: true };
    return { throttled: false };
  }

  async history(principal: Principal, query: { channelId: string; beforeSeq?: number | undefined; afterSeq?: number | undefined; limit?: number | undefined }): Promise<HistoryResult> {
    await this.authorize(principal, query.channelId);
    const limit = Math.min(query.limit ?? DEFAULT_PAGE, MAX_PAGE);
    try {
      return await this.store.history(query.channelId, {
        limit,
        ...(query.beforeSeq !== undefined ? { beforeSeq: query.beforeSeq } : {}),
        ...(query.afterSeq !== undefined ? { afterSeq: query.afterSeq } : {}),
      });
    } catch (err) {
      throw storeFailure(err);
    }
  }

  async presenceOf(principal: Principal, channelId: string): Promise<PresenceUser[]> {
    await this.authorize(principal, channelId);
    try {
      return await this.presence.list(channelId);
    } catch (err) {
      throw new SwitchboardError(ErrorCode.UNAVAILABLE, 'Presence is unavailable right now; retry shortly', { cause: err });
    }
  }

  /**
   * Records a socket joining; resolves true when the others should hear `user_joined` (the user's
   * first connection in the channel). When presence cannot answer, it says true: better a repeated
   * notice than a missing one.
   */
  async connected(channelId: string, userId: string): Promise<boolean> {
    return this.presence.add(channelId, userId).catch((err: unknown) => {
      this.log.warn({ channelId, reason: (err as Error).message }, 'presence add failed');
      return true;
    });
  }

  /** Records a socket leaving; resolves true when the others should hear `user_left`. */
  async disconnected(channelId: string, userId: string): Promise<boolean> {
    return this.presence.remove(channelId, userId).catch((err: unknown) => {
      this.log.warn({ channelId, reason: (err as Error).message }, 'presence remove failed');
      return true;
    });
  }

  /** Admin: grant a user access to a private channel. */
  async grant(principal: Principal, channelId: string, userId: string): Promise<void> {
    await this.requireAdminChannel(principal, channelId);
    await this.store.addMember(channelId, userId).catch((err) => Promise.reject(storeFailure(err)));
  }

  /** Admin: revoke access; the user's sockets leave the room on every instance. */
  async revoke(principal: Principal, channelId: string, userId: string): Promise<void> {
    const channel = await this.requireAdminChannel(principal, channelId);
    await this.store.removeMember(channelId, userId).catch((err) => Promise.reject(storeFailure(err)));
    if (channel.isPrivate) this.broadcaster.evict(channelId, userId);
  }

  private async requireAdminChannel(principal: Principal, channelId: string) {
    if (!principal.isAdmin) throw new SwitchboardError(ErrorCode.FORBIDDEN, FORBIDDEN_MESSAGE);
    const channel = await this.findChannel(channelId);
    if (!channel) throw new SwitchboardError(ErrorCode.NOT_FOUND, `No channel ${channelId}`);
    return channel;
  }

  /** Channels the principal may join: public ones, granted ones, and all for admins. */
  async listChannels(principal: Principal): Promise<Channel[]> {
    try {
      const channels = await this.store.listChannels(principal.isAdmin ? undefined : principal.userId);
      if (principal.isAdmin || principal.channels.length === 0) return channels;
      const known = new Set(channels.map((c) => c.id));
      const granted = await Promise.all(principal.channels.filter((id) => !known.has(id)).slice(0, 100).map((id) => this.store.getChannel(id)));
      return [...channels, ...granted.filter((c): c is Channel => c !== undefined)].sort((a, b) => (a.id < b.id ? -1 : 1));
    } catch (err) {
      throw storeFailure(err);
    }
  }

  async createChannel(principal: Principal, input: { id: string; name?: string | undefined; private?: boolean | undefined }): Promise<Channel> {
    if (!principal.isAdmin) throw new SwitchboardError(ErrorCode.FORBIDDEN, FORBIDDEN_MESSAGE);
    try {
      return await this.store.createChannel({ id: input.id, name: input.name ?? input.id, isPrivate: input.private ?? false });
    } catch (err) {
      if (err instanceof StoreError && err.kind === 'conflict') throw new SwitchboardError(ErrorCode.CONFLICT, `Channel ${input.id} already exists`);
      throw storeFailure(err);
    }
  }
}
