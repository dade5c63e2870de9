import { Migrator, sql, type Kysely, type Transaction } from 'kysely';
import type { Logger } from 'pino';
import {
  StoreError,
  type AppendResult,
  type Channel,
  type HistoryPage,
  type HistoryQuery,
  type MessageDraft,
  type MessageStore,
} from '../../ports/message-store.js';
import { planAppend, toMessage, type MessageRow } from './append-plan.js';
import { migrationProvider } from './migrations.js';
import type { Database } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';

export interface KyselyStoreOptions {
  db: Kysely<Database>;
  dialect: Dialect;
  logger: Logger;
  /** Classifies a driver error; the dialect module knows its driver's codes. */
  classify: (err: unknown) => StoreError['kind'];
  /**
   * Calls that fail because another connection holds the database's lock are tried again, after a
   * short asynchronous backoff, until this deadline has passed (then they fail as `classify` says).
   * Only for a driver that fails at once on a lock instead of waiting (SQLite with busy_timeout 0).
   */
  retryLocked?: { isLocked: (err: unknown) => boolean; timeoutMs: number };
}

/** First and largest pause between two tries of a locked call; each is jittered to half of it or more. */
const LOCK_BACKOFF_MS = { first: 2, max: 50 };

const lockBackoff = (attempt: number, leftMs: number): Promise<void> => {
  const ceiling = Math.min(LOCK_BACKOFF_MS.max, LOCK_BACKOFF_MS.first * 2 ** attempt);
  const ms = Math.max(1, Math.min(leftMs, ceiling * (0.5 + Math.random() / 2)));
  return new Promise((resolve) => setTimeout(resolve, ms));
};

type ChannelRow = Database['channels'];

const toChannel = (r: ChannelRow): Channel => ({
  id: r.id,
  name: r.name,
  isPrivate: Number(r.is_private) === 1,
  lastSeq: Number(r.last_seq),
  createdAt: new Date(Number(r.created_at)).toISOString(),
});

/**
 * The MessageStore on Kysely, for SQLite and PostgreSQL: the dialect modules supply the driver and
 * its error classification, and every query is the same for both, with one exception: SQLite runs the
 * reads and writes of `append` on prepared statements instead (SqliteMessageStore). The rules of
 * `append` are written once, in planAppend, for both.
 */
export class KyselyMessageStore implements MessageStore {
  private readonly db: Kysely<Database>;
  private readonly dialect: Dialect;
  private readonly log: Logger;
  private readonly classify: KyselyStoreOptions['classify'];
  private readonly retryLocked: KyselyStoreOptions['retryLocked'];

  constructor(options: KyselyStoreOptions) {
    this.db = options.db;
    this.dialect = options.dialect;
    this.log = options.logger;
    this.classify = options.classify;
    this.retryLocked = options.retryLocked;
  }

  /**
   * Runs `fn`, turning driver errors into StoreErrors the core understands. A call that found the
   * database locked is run again (see `retryLocked`): `fn` must then be a whole transaction or a
   * single statement, which a lock failure leaves undone. `report: false` leaves logging the failure
   * to the caller (start-up steps, which the CLI reports in one line).
   */
  protected async guard<T>(what: string, fn: () => Promise<T>, { report = true }: { report?: boolean } = {}): Promise<T> {
    const deadline = Date.now() + (this.retryLocked?.timeoutMs ?? 0);
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof StoreError) throw err;
        const left = deadline - Date.now();
        if (this.retryLocked?.isLocked(err) && left > 0) {
          await lockBackoff(attempt, left);
          continue;
        }
        throw this.failure(what, err, report);
      }
    }
  }

  private failure(what: string, err: unknown, report: boolean): StoreError {
    const kind = this.classify(err);
    if (!report) return new StoreError(kind, `${what} failed (${kind})`, { cause: err });
    const reason = (err as Error)?.message;
    // The stack, which names driver internals, only at debug: operators get the reason in one line.
    this.log.debug({ err, op: what }, 'store query failed');
    if (kind === 'internal') this.log.error({ op: what, reason }, 'store query failed');
    else this.log.warn({ op: what, kind, reason }, 'store query failed');
    return new StoreError(kind, `${what} failed (${kind})`, { cause: err });
  }

  migrate(): Promise<void> {
    const migrator = new Migrator({ db: this.db, provider: migrationProvider });
    // The pending migrations run in one transaction (see the SQLite adapter): a locked try leaves
    // nothing behind, and the next one starts again from what has run.
    return this.guard('migrate', async () => {
      const { error, results } = await migrator.migrateToLatest();
      for (const r of results ?? []) {
        if (r.status === 'Success') this.log.info({ migration: r.migrationName }, 'migration applied');
        if (r.status === 'Error') this.log.error({ migration: r.migrationName }, 'migration failed');
      }
      if (error) throw error;
    }, { report: false });
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
    const revokedAt = Date.now();
    return this.guard('removeMember', () =>
      this.db.transaction().execute(async (trx) => {
        const r = await trx.deleteFrom('channel_members').where('channel_id', '=', channelId).where('user_id', '=', userId).executeTakeFirst();
        await trx
          .insertInto('channel_revocations')
          .values({ channel_id: channelId, user_id: userId, revoked_at: revokedAt })
          .onConflict((oc) => oc.columns(['channel_id', 'user_id']).doUpdateSet({ revoked_at: revokedAt }))
          .execute();
        return Number(r.numDeletedRows) > 0;
      }),
    );
  }

  revokedAt(channelId: string, userId: string): Promise<number | undefined> {
    return this.guard('revokedAt', async () => {
      const row = await this.db
        .selectFrom('channel_revocations')
        .select('revoked_at')
        .where('channel_id', '=', channelId)
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return row ? Number(row.revoked_at) : undefined;
    });
  }

  append(drafts: readonly MessageDraft[]): Promise<AppendResult[]> {
    if (drafts.length === 0) return Promise.resolve([]);
    return this.guard('append', () => this.db.transaction().execute((trx) => this.appendIn(trx, drafts)));
  }

  private async appendIn(trx: Transaction<Database>, drafts: readonly MessageDraft[]): Promise<AppendResult[]> {
    const lastSeq = new Map<string, number>();
    const stored: MessageRow[] = [];
    // A fixed lock order keeps two batches that touch the same channels from deadlocking.
    for (const channelId of [...new Set(drafts.map((d) => d.channelId))].sort()) {
      const channel = await trx
        .selectFrom('channels')
        .select('last_seq')
        .where('id', '=', channelId)
        .$if(this.dialect === 'postgres', (q) => q.forUpdate())
        .executeTakeFirst();
      if (!channel) continue;
      lastSeq.set(channelId, Number(channel.last_seq));
      // Read after the lock: a concurrent writer's duplicate is committed by now and visible.
      const cmids = [...new Set(drafts.filter((d) => d.channelId === channelId).map((d) => d.clientMessageId))];
      stored.push(...(await trx.selectFrom('messages').selectAll().where('channel_id', '=', channelId).where('client_message_id', 'in', cmids).execute()));
    }
    const plan = planAppend(drafts, { lastSeq, stored });
    for (const [channelId, seq] of plan.lastSeq) {
      await trx.updateTable('channels').set({ last_seq: seq }).where('id', '=', channelId).execute();
    }
    // Chunks keep each statement under the drivers' bound-parameter limits.
    for (let i = 0; i < plan.rows.length; i += 1000) {
      await trx.insertInto('messages').values(plan.rows.slice(i, i + 1000)).execute();
    }
    return plan.results;
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
  }
}
