import { randomUUID } from 'node:crypto';
import type { Message } from 'switchboard-client/protocol';
import { StoreError, type AppendResult, type MessageDraft } from '../../ports/message-store.js';
import type { Database } from './schema.js';

export type MessageRow = Database['messages'];

/** A row `append` inserts. */
export type NewMessageRow = MessageRow & { seq: number; created_at: number };

/** A stored row as the wire's Message (BIGINT columns may arrive as strings or bigints). */
export const toMessage = (r: MessageRow): Message => ({
  id: r.id,
  seq: Number(r.seq),
  channelId: r.channel_id,
  userId: r.user_id,
  content: r.content,
  timestamp: new Date(Number(r.created_at)).toISOString(),
  clientMessageId: r.client_message_id,
});

/** What `append` read inside its transaction, after locking the channels. */
export interface AppendState {
  /** last_seq of each channel the drafts name that exists. */
  lastSeq: ReadonlyMap<string, number>;
  /** Stored messages that may be originals of drafts: at least every one with a draft's (channel, user, clientMessageId). */
  stored: Iterable<MessageRow>;
}

export interface AppendPlan {
  /** In the order of the drafts. */
  results: AppendResult[];
  rows: NewMessageRow[];
  /** The new last_seq of each channel that gets rows. */
  lastSeq: Map<string, number>;
}

const dedupKey = (channelId: string, userId: string, clientMessageId: string) => `${channelId}\u0000${userId}\u0000${clientMessageId}`;

/**
 * The rules of MessageStore.append, written once for every backend: each channel's new messages get
 * the seqs after its last_seq in draft order; a draft whose (channel, user, clientMessageId) is stored,
 * or came earlier in the batch, is a duplicate of that original; a draft for a channel that does not
 * exist fails the whole batch with StoreError('not_found'). The caller reads `state` and writes the
 * plan in one transaction.
 */
export function planAppend(drafts: readonly MessageDraft[], state: AppendState, now = Date.now()): AppendPlan {
  const known = new Map<string, Message>();
  for (const r of state.stored) known.set(dedupKey(r.channel_id, r.user_id, r.client_message_id), toMessage(r));
  const lastSeq = new Map<string, number>();
  const rows: NewMessageRow[] = [];
  const results = drafts.map((d): AppendResult => {
    const last = lastSeq.get(d.channelId) ?? state.lastSeq.get(d.channelId);
    if (last === undefined) throw new StoreError('not_found', `channel ${d.channelId} does not exist`);
    const key = dedupKey(d.channelId, d.userId, d.clientMessageId);
    const original = known.get(key);
    if (original) return { message: original, duplicate: true };
    const row: NewMessageRow = {
      id: randomUUID(),
      channel_id: d.channelId,
      seq: last + 1,
      user_id: d.userId,
      content: d.content,
      client_message_id: d.clientMessageId,
      created_at: now,
    };
    rows.push(row);
    lastSeq.set(d.channelId, row.seq);
    const message = toMessage(row);
    known.set(key, message);
    return { message, duplicate: false };
  });
  return { results, rows, lastSeq };
}
