import { randomUUID } from 'node:crypto';
import { Migrator, sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Message } from 'switchboard-client/protocol';
import {
  StoreError,
  type AppendResult,
  type Channel,
  type HistoryPage,
  type HistoryQuery,
  type MessageDraft,
  type MessageStore,
} from '../../ports/message-store.js';
import { migrationProvider } from './migrations.js';
import type { Database } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';

export interface KyselyStoreOptions {
  db: Kysely<Database>;
  dialect: Dialect;
  logger: Logger;
  /** Classifies a driver error; the dialect module knows its driver's codes. */
  classify: (err: unknown) => StoreError['kind'];
  /** Closes what the dialect opened beyond Kysely (nothing for most). */
  onClose?: () => Promise<void>;
}

export type MessageRow = Database['messages'];
type ChannelRow = Database['channels'];

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

const toChannel = (r: ChannelRow): Channel => ({
  id: r.id,
  name: r.name,
  isPrivate: Number(r.is_private) === 1,
  lastSeq: Number(r.last_seq),
  createdAt: new Date(Number(r.created_at)).toISOString(),
});

const dedupKey = (userId: string, clientMessageId: string) => `${userId}\u0000${clientMessageId}`;

/** The one MessageStore implementation; SQLite and PostgreSQL differ only in the Kysely dialect. */
export class KyselyMessageStore implements MessageStore {
  private readonly db: Kysely<Database>;
  private readonly dialect: Dialect;
  private readonly log: Logger;
  private readonly classify: KyselyStoreOptions['classify'];
  private readonly onClose: (() => Promise<void>) | undefined;

  constructor(options: KyselyStoreOptions) {
    this.db = options.db;
    this.dialect = options.dialect;
    this.log = options.logger;
    this.classify = options.classify;
    this.onClose = options.onClose;
  }

  /** Runs `fn`, turning driver errors into StoreErrors the core understands. */
  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StoreError) throw err;
      const kind = this.classify(err);
      if (kind === 'internal') this.log.error({ err, op: what }, 'store query failed');
      else this.log.warn({ op: what, kind, reason: (err as Error)?.message }, 'store query failed');
      throw new StoreError(kind, `${what} failed (${kind})`, { cause: err });
    }
  }

  async migrate(): Promise<void> {
    const migrator = new Migrator({ db: this.db, provider: migrationProvider });
    const { error, results } = await migrator.migrateToLatest();
    for (const r of results ?? []) {
      if (r.status === 'Success') this.log.info({ migration: r.migrationName }, 'migration applied');
      if (r.status === 'Error') this.log.error({ migration: r.migrationName }, 'migration failed');
    }
    if (error) throw new StoreError(this.classify(error), 'database migration failed', { cause: error });
  }

  ensurePublicChannels(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    const now = Date.now();
    return this.guard('ensurePublicChannels', async () => {
      await this.db
        .insertInto('channels')
        .values(ids.map((id) => ({ id, name: id, is_private: 0, last_seq: 0, created_at: now })))
        .onConflict((oc) => oc.column('id').doNothing())
        .execute();
    });
  }

  createChannel(input: { id: string; name: string; isPrivate: boolean }): Promise<Channel> {
    return this.guard('createChannel', async () => {
      const row: ChannelRow = {
        id: input.id,
        name: input.name,
        is_private: input.isPrivate ? 1 : 0,
        last_seq: 0,
        created_at: Date.now(),
      };
      const inserted = await this.db
        .insertInto('channels')
        .values(row)
        .onConflict((oc) => oc.column('id').doNothing())
        .returning('id')
        .executeTakeFirst();
      if (!inserted) throw new StoreError('conflict', `channel ${input.id} exists`);
      return toChannel(row);
    });
  }

  getChannel(id: string): Promise<Channel | undefined> {
    return this.guard('getChannel', async () => {
      const row = await this.db.selectFrom('channels').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toChannel(row) : undefined;
    });
  }

  listChannels(userId?: string): Promise<Channel[]> {
    return this.guard('listChannels', async () => {
      let q = this.db.selectFrom('channels').selectAll().orderBy('id');
      if (userId !== undefined) {
        q = q.where((eb) =>
          eb.or([
            eb('is_private', '=', 0),
            eb(
              'id',
              'in',
              eb.selectFrom('channel_members').select('channel_id').where('user_id', '=', userId),
            ),
          ]),
        );
      }
      return (await q.execute()).map(toChannel);
    });
  }

  isMember(channelId: string, userId: string): Promise<boolean> {
    return this.guard('isMember', async () => {
      const row = await this.db
        .selectFrom('channel_members')
        .select('user_id')
        .where('channel_id', '=', channelId)
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return row !== undefined;
    });
  }

  addMember(channelId: string, userId: string): Promise<void> {
    return this.guard('addMember', async () => {
      await this.db
        .insertInto('channel_members')
        .values({ channel_id: channelId, user_id: userId, created_at: Date.now() })
        .onConflict((oc) => oc.columns(['channel_id', 'user_id']).doNothing())
        .execute();
    });
  }

  removeMember(channelId: string, userId: string): Promise<boolean> {
    return this.guard('removeMember', async () => {
      const r = await this.db
        .deleteFrom('channel_members')
        .where('channel_id', '=', channelId)
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return Number(r.numDeletedRows) > 0;
    });
  }

  append(drafts: readonly MessageDraft[]): Promise<AppendResult[]> {
    if (drafts.length === 0) return Promise.resolve([]);
    return this.guard('append', () =>
      this.db.transaction().execute(async (trx) => {
        const results = new Array<AppendResult>(drafts.length);
        const byChannel = new Map<string, number[]>();
        drafts.forEach((d, i) => {
          const list = byChannel.get(d.channelId);
          if (list) list.push(i);
          else byChannel.set(d.channelId, [i]);
        });
        // A fixed lock order keeps two batches that touch the same channels from deadlocking.
        const channelIds = [...byChannel.keys()].sort();
        const now = Date.now();
        const rows: MessageRow[] = [];
        for (const channelId of channelIds) {
          const indexes = byChannel.get(channelId)!;
          const channel = await trx
            .selectFrom('channels')
            .select('last_seq')
            .where('id', '=', channelId)
            .$if(this.dialect === 'postgres', (q) => q.forUpdate())
            .executeTakeFirst();
          if (!channel) throw new StoreError('not_found', `channel ${channelId} does not exist`);

          // Read after the lock: a concurrent writer's duplicate is committed by now and visible.
          const existing = new Map<string, Message>();
          const cmids = [...new Set(indexes.map((i) => drafts[i]!.clientMessageId))];
          const found = await trx
            .selectFrom('messages')
            .selectAll()
            .where('channel_id', '=', channelId)
            .where('client_message_id', 'in', cmids)
            .execute();
          for (const r of found) existing.set(dedupKey(r.user_id, r.client_message_id), toMessage(r));

          let seq = Number(channel.last_seq);
          for (const i of indexes) {
            const d = drafts[i]!;
            const key = dedupKey(d.userId, d.clientMessageId);
            const original = existing.get(key);
            if (original) {
              results[i] = { message: original, duplicate: true };
              continue;
            }
            seq += 1;
            const row: MessageRow = {
              id: randomUUID(),
              channel_id: channelId,
              seq,
              user_id: d.userId,
              content: d.content,
              client_message_id: d.clientMessageId,
              created_at: now,
            };
            rows.push(row);
            const message = toMessage(row);
            existing.set(key, message);
            results[i] = { message, duplicate: false };
          }
          if (seq !== Number(channel.last_seq)) {
            await trx.updateTable('channels').set({ last_seq: seq }).where('id', '=', channelId).execute();
          }
        }
        // Chunks keep each statement under the drivers' bound-parameter limits.
        for (let i = 0; i < rows.length; i += 1000) {
          await trx.insertInto('messages').values(rows.slice(i, i + 1000)).execute();
        }
        return results;
      }),
    );
  }

  history(channelId: string, query: HistoryQuery): Promise<HistoryPage> {
    return this.guard('history', async () => {
      const { limit, beforeSeq, afterSeq } = query;
      let q = this.db.selectFrom('messages').selectAll().where('channel_id', '=', channelId);
      const forward = afterSeq !== undefined;
      if (forward) q = q.where('seq', '>', afterSeq).orderBy('seq', 'asc');
      else {
        if (beforeSeq !== undefined) q = q.where('seq', '<', beforeSeq);
        q = q.orderBy('seq', 'desc');
      }
      const rows = await q.limit(limit + 1).execute();
      const hasMore = rows.length > limit;
      const page = rows.slice(0, limit).map(toMessage);
      if (!forward) page.reverse();
      return { messages: page, hasMore };
    });
  }

  ping(): Promise<void> {
    return this.guard('ping', async () => {
      await sql`SELECT 1`.execute(this.db);
    });
  }

  async close(): Promise<void> {
    await this.db.destroy();
    await this.onClose?.();
  }
}
