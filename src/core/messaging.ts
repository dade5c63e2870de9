import { ErrorCode, SwitchboardError, DEFAULT_PAGE, MAX_PAGE, type HistoryResult, type Message, type SendResult } from 'switchboard-client/protocol';
import { SYSTEM_USER_ID, type Principal } from '../ports/authenticator.js';
import type { Broadcaster } from '../ports/broadcaster.js';
import type { AppendResult, MessageDraft, MessageStore } from '../ports/message-store.js';
import type { RateLimiter } from '../ports/rate-limiter.js';
import type { Rooms } from '../ports/rooms.js';
import type { ChannelAccess } from './access.js';
import { AppendBatcher } from './append-batcher.js';
import { forbidden, fromStore } from './errors.js';
import { historyCost, type ReadBudget } from './read-budget.js';
import type { Session } from './session.js';

export interface MessagingDeps {
  store: Pick<MessageStore, 'append' | 'history'>;
  broadcaster: Broadcaster;
  rooms: Pick<Rooms, 'isJoined'>;
  access: ChannelAccess;
  /** Messages per user. */
  messageLimiter: RateLimiter;
  /** The per-user read budget that `history` spends from, by page size. */
  readBudget: ReadBudget;
  /** Observes each store batch (metrics). */
  onStoreBatch?: ((size: number, ms: number, failed: boolean) => void) | undefined;
  /** Observes each stored send: whether it was a retry of a stored message. */
  onStored?: ((duplicate: boolean) => void) | undefined;
  /**
   * Test-only fault hook: runs after a message is stored and before it is broadcast (the chaos suite
   * crashes the process here). Never set in production.
   */
  afterStore?: ((message: Message) => void) | undefined;
}

export interface HistoryQuery {
  channelId: string;
  beforeSeq?: number | undefined;
  afterSeq?: number | undefined;
  limit?: number | undefined;
}

/** Sending and reading messages: every send is stored before it is broadcast. */
export class Messaging {
  private readonly deps: MessagingDeps;
  private readonly batcher: AppendBatcher;

  constructor(deps: MessagingDeps) {
    this.deps = deps;
    this.batcher = new AppendBatcher(deps.store, deps.onStoreBatch ? { onBatch: deps.onStoreBatch } : {});
  }

  /** Resolves when every accepted send has been stored (or failed). */
  writesSettled(): Promise<void> {
    return this.batcher.idle();
  }

  /** Stores and broadcasts a member's message. The connection must be in the channel. */
  async send(session: Session, input: Omit<MessageDraft, 'userId'>): Promise<SendResult> {
    if (!this.deps.rooms.isJoined(session.id, input.channelId)) throw forbidden('Join the channel before sending to it');
    const decision = await this.deps.messageLimiter.consume(session.principal.userId);
    if (!decision.allowed) {
      throw new SwitchboardError(ErrorCode.RATE_LIMITED, 'Too many messages; slow down', { retryAfterMs: decision.retryAfterMs });
    }
    return this.storeAndBroadcast({ ...input, userId: session.principal.userId });
  }

  /** Server-side publish (admin REST): as `userId`, or as the server itself (SYSTEM_USER_ID, which no token can claim). */
  async publish(principal: Principal, channelId: string, input: { content: string; userId?: string | undefined; clientMessageId: string }): Promise<SendResult> {
    await this.deps.access.forAdmin(principal, channelId);
    return this.storeAndBroadcast({ channelId, content: input.content, clientMessageId: input.clientMessageId, userId: input.userId ?? SYSTEM_USER_ID });
  }

  /**
   * A page of the channel's history, oldest first; `limit` defaults to 50 and is clamped to 200. Spends
   * the reader's budget by `limit`.
   */
  async history(principal: Principal, query: HistoryQuery): Promise<HistoryResult> {
    await this.deps.access.authorize(principal, query.channelId);
    const limit = Math.min(query.limit ?? DEFAULT_PAGE, MAX_PAGE);
    await this.deps.readBudget.spend(principal.userId, historyCost(limit));
    return fromStore(
      this.deps.store.history(query.channelId, {
        limit,
        ...(query.beforeSeq !== undefined ? { beforeSeq: query.beforeSeq } : {}),
        ...(query.afterSeq !== undefined ? { afterSeq: query.afterSeq } : {}),
      }),
    );
  }

  private async storeAndBroadcast(draft: MessageDraft): Promise<SendResult> {
    const result: AppendResult = await fromStore(this.batcher.append(draft));
    this.deps.onStored?.(result.duplicate);
    this.deps.afterStore?.(result.message);
    // A retry is broadcast again: its first broadcast may have been lost with a crashed instance.
    this.deps.broadcaster.toChannel(draft.channelId, 'new_message', result.message);
    return result.duplicate ? { message: result.message, duplicate: true } : { message: result.message };
  }
}
