import type BetterSqlite3 from 'better-sqlite3';
import type { AppendResult, MessageDraft } from '../../ports/message-store.js';
import { planAppend, type MessageRow } from './append-plan.js';
import { KyselyMessageStore, type KyselyStoreOptions } from './kysely-store.js';

type AppendTx = (drafts: readonly MessageDraft[]) => AppendResult[];

/**
 * The Kysely store with the reads and writes of `append` on better-sqlite3 statements prepared once,
 * in one BEGIN IMMEDIATE transaction; the rules are planAppend's, as on every backend. Building,
 * compiling and preparing Kysely's queries per batch cost several times the write itself
 * (docs/performance.md has the profile); everything else stays on Kysely.
 */
export class SqliteMessageStore extends KyselyMessageStore {
  private appendTx: AppendTx | undefined;

  constructor(
    private readonly database: BetterSqlite3.Database,
    options: KyselyStoreOptions,
  ) {
    super(options);
  }

  /** Prepared on first use: the tables exist only after migrate(). */
  private prepareAppend(): AppendTx {
    const lastSeq = this.database.prepare<[string], { last_seq: number }>('SELECT last_seq FROM channels WHERE id = ?');
    const find = this.database.prepare<[string, string, string], MessageRow>(
      'SELECT * FROM messages WHERE channel_id = ? AND user_id = ? AND client_message_id = ?',
    );
    const setSeq = this.database.prepare<[number, string]>('UPDATE channels SET last_seq = ? WHERE id = ?');
    const insert = this.database.prepare<[string, string, number, string, string, string, number]>(
      'INSERT INTO messages (id, channel_id, seq, user_id, content, client_message_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    const tx = this.database.transaction((drafts: readonly MessageDraft[]): AppendResult[] => {
      const seqs = new Map<string, number>();
      const stored: MessageRow[] = [];
      for (const d of drafts) {
        if (!seqs.has(d.channelId)) {
          const row = lastSeq.get(d.channelId);
          if (row) seqs.set(d.channelId, Number(row.last_seq));
        }
        const found = find.get(d.channelId, d.userId, d.clientMessageId);
        if (found) stored.push(found);
      }
      const plan = planAppend(drafts, { lastSeq: seqs, stored });
      for (const r of plan.rows) insert.run(r.id, r.channel_id, r.seq, r.user_id, r.content, r.client_message_id, r.created_at);
      for (const [channelId, seq] of plan.lastSeq) setSeq.run(seq, channelId);
      return plan.results;
    });
    return (drafts) => tx.immediate(drafts);
  }

  override append(drafts: readonly MessageDraft[]): Promise<AppendResult[]> {
    if (drafts.length === 0) return Promise.resolve([]);
    return this.guard('append', () => {
      this.appendTx ??= this.prepareAppend();
      return Promise.resolve(this.appendTx(drafts));
    });
  }
}
