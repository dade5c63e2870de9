import { randomUUID } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import type { Message } from 'switchboard-client/protocol';
import { StoreError, type AppendResult, type MessageDraft } from '../../ports/message-store.js';
import { KyselyMessageStore, toMessage, type KyselyStoreOptions, type MessageRow } from './kysely-store.js';

/**
 * The Kysely store with `append` written directly against better-sqlite3: the same rules (seq
 * assigned per channel in draft order, a known (channel, user, clientMessageId) returns the original,
 * an unknown channel fails the whole batch), in one BEGIN IMMEDIATE transaction of statements
 * prepared once. Building, compiling and preparing Kysely's six queries per batch cost several
 * times the write itself (docs/performance.md has the profile); everything else stays on Kysely.
 */
export class SqliteMessageStore extends KyselyMessageStore {
  private appendTx: ((drafts: readonly MessageDraft[]) => AppendResult[]) | undefined;

  constructor(
    private readonly database: BetterSqlite3.Database,
    private readonly storeOptions: KyselyStoreOptions,
  ) {
    super(storeOptions);
  }

  /** Prepared on first use: the tables exist only after migrate(). */
  private prepareAppend(): (drafts: readonly MessageDraft[]) => AppendResult[] {
    const lastSeq = this.database.prepare<[string], { last_seq: number }>('SELECT last_seq FROM channels WHERE id = ?');
    const find = this.database.prepare<[string, string, string], MessageRow>(
      'SELECT * FROM messages WHERE channel_id = ? AND user_id = ? AND client_message_id = ?',
    );
    const setSeq = this.database.prepare<[number, string]>('UPDATE channels SET last_seq = ? WHERE id = ?');
    const insert = this.database.prepare<[string, string, number, string, string, string, number]>(
      'INSERT INTO messages (id, channel_id, seq, user_id, content, client_message_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    const tx = this.database.transaction((drafts: readonly MessageDraft[]): AppendResult[] => {
      const now = Date.now();
      const timestamp = new Date(now).toISOString();
      // Per channel: the last_seq read in this transaction and the last seq handed out.
      const seqs = new Map<string, { read: number; next: number }>();
      const seen = new Map<string, Message>();
      const results = drafts.map((d): AppendResult => {
        let seq = seqs.get(d.channelId);
        if (!seq) {
          const row = lastSeq.get(d.channelId);
          if (!row) throw new StoreError('not_found', `channel ${d.channelId} does not exist`);
          seq = { read: Number(row.last_seq), next: Number(row.last_seq) };
          seqs.set(d.channelId, seq);
        }
        const key = `${d.channelId}\u0000${d.userId}\u0000${d.clientMessageId}`;
        const earlier = seen.get(key);
        if (earlier) return { message: earlier, duplicate: true };
        const found = find.get(d.channelId, d.userId, d.clientMessageId);
        if (found) {
          const original = toMessage(found);
          seen.set(key, original);
          return { message: original, duplicate: true };
        }
        seq.next += 1;
        const id = randomUUID();
        insert.run(id, d.channelId, seq.next, d.userId, d.content, d.clientMessageId, now);
        const message: Message = { id, seq: seq.next, channelId: d.channelId, userId: d.userId, content: d.content, timestamp, clientMessageId: d.clientMessageId };
        seen.set(key, message);
        return { message, duplicate: false };
      });
      for (const [channelId, seq] of seqs) if (seq.next !== seq.read) setSeq.run(seq.next, channelId);
      return results;
    });
    return (drafts) => tx.immediate(drafts);
  }

  override append(drafts: readonly MessageDraft[]): Promise<AppendResult[]> {
    if (drafts.length === 0) return Promise.resolve([]);
    try {
      this.appendTx ??= this.prepareAppend();
      return Promise.resolve(this.appendTx(drafts));
    } catch (err) {
      if (err instanceof StoreError) return Promise.reject(err);
      const kind = this.storeOptions.classify(err);
      const log = this.storeOptions.logger;
      if (kind === 'internal') log.error({ err, op: 'append' }, 'store query failed');
      else log.warn({ op: 'append', kind, reason: (err as Error)?.message }, 'store query failed');
      return Promise.reject(new StoreError(kind, `append failed (${kind})`, { cause: err }));
    }
  }
}
