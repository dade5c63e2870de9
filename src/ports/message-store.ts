import type { Message } from 'switchboard-client/protocol';

export interface Channel {
  id: string;
  name: string;
  isPrivate: boolean;
  /** Highest seq stored in the channel; 0 when empty. */
  lastSeq: number;
  /** ISO 8601 */
  createdAt: string;
}

export interface MessageDraft {
  channelId: string;
  userId: string;
  content: string;
  clientMessageId: string;
}

export interface AppendResult {
  message: Message;
  /** The (channelId, userId, clientMessageId) was stored before: `message` is that original. */
  duplicate: boolean;
}

export interface HistoryQuery {
  /** Messages with seq < beforeSeq (the newest of them). */
  beforeSeq?: number;
  /** Messages with seq > afterSeq (the oldest of them). */
  afterSeq?: number;
  /** Page size, already clamped by the caller. */
  limit: number;
}

export interface HistoryPage {
  /** Always oldest first. */
  messages: Message[];
  /** More exist beyond the page in the direction asked (older without a cursor or with beforeSeq). */
  hasMore: boolean;
}

/** Why a store call failed, so the caller can pick the right error code. */
export type StoreErrorKind = 'unavailable' | 'conflict' | 'not_found' | 'internal';

export class StoreError extends Error {
  constructor(
    readonly kind: StoreErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/**
 * The system of record: channels, private-channel memberships and messages.
 *
 * Guarantees every implementation keeps (the contract suites in test/contract check them):
 * - **Gapless order.** Each channel's messages get seq 1, 2, 3, … with no gap and no repeat, also when
 *   several processes append to the same channel at once (the seq is assigned inside the insert's
 *   transaction, under a lock: the channel's row on PostgreSQL, the whole file on SQLite).
 * - **Idempotent append.** A draft whose (channelId, userId, clientMessageId) is already stored stores
 *   nothing and returns the stored original with `duplicate: true`; so does a repeat within one batch.
 * - **Atomic batches.** `append` stores all drafts of a call in one transaction or none of them. When it
 *   rejects, nothing of that call was stored.
 * - **Failures are typed.** Connection problems reject with `StoreError('unavailable')`; a draft for a
 *   channel that does not exist rejects the whole batch with `StoreError('not_found')`.
 */
export interface MessageStore {
  /** Creates or upgrades the schema. Safe to run concurrently from several instances. */
  migrate(): Promise<void>;
  /** Creates the public channels that do not exist yet; leaves existing ones as they are. */
  ensurePublicChannels(ids: readonly string[]): Promise<void>;
  /** Rejects with StoreError('conflict') when the id is taken. */
  createChannel(input: { id: string; name: string; isPrivate: boolean }): Promise<Channel>;
  getChannel(id: string): Promise<Channel | undefined>;
  /** Public channels, plus the private ones `userId` is a member of (all of them when undefined). */
  listChannels(userId?: string): Promise<Channel[]>;
  isMember(channelId: string, userId: string): Promise<boolean>;
  /** Idempotent. */
  addMember(channelId: string, userId: string): Promise<void>;
  /**
   * Revokes the user's access: removes the membership and records when (ms since the epoch), in one
   * transaction, also when there was no membership (a token's `channels` grant is revoked the same way).
   * A later revocation replaces the time. Resolves false when there was no membership.
   */
  removeMember(channelId: string, userId: string): Promise<boolean>;
  /** When the user's access to the channel was last revoked (ms since the epoch); undefined if never. */
  revokedAt(channelId: string, userId: string): Promise<number | undefined>;
  /** Stores drafts in one transaction, in order; results are in the order of `drafts`. */
  append(drafts: readonly MessageDraft[]): Promise<AppendResult[]>;
  history(channelId: string, query: HistoryQuery): Promise<HistoryPage>;
  /** Resolves when the store answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
