import { type Kysely, type Migration, type MigrationProvider } from 'kysely';

/** Every schema change, in order. Never edit a released migration: add a new one. */
const migrations: Record<string, Migration> = {
  '2026-11-28-001-initial': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('channels')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('name', 'varchar(128)', (c) => c.notNull())
        .addColumn('is_private', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('last_seq', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('channel_members')
        .addColumn('channel_id', 'varchar(64)', (c) => c.notNull().references('channels.id').onDelete('cascade'))
        .addColumn('user_id', 'varchar(128)', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('channel_members_pk', ['channel_id', 'user_id'])
        .execute();
      await db.schema
        .createTable('messages')
        .addColumn('id', 'varchar(40)', (c) => c.primaryKey())
        .addColumn('channel_id', 'varchar(64)', (c) => c.notNull().references('channels.id').onDelete('cascade'))
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('user_id', 'varchar(128)', (c) => c.notNull())
        .addColumn('content', 'text', (c) => c.notNull())
        .addColumn('client_message_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('messages_channel_seq_uq', ['channel_id', 'seq'])
        .addUniqueConstraint('messages_dedup_uq', ['channel_id', 'user_id', 'client_message_id'])
        .execute();
    },
  },
  '2026-12-01-002-revocations': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('channel_revocations')
        .addColumn('channel_id', 'varchar(64)', (c) => c.notNull().references('channels.id').onDelete('cascade'))
        .addColumn('user_id', 'varchar(128)', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('channel_revocations_pk', ['channel_id', 'user_id'])
        .execute();
    },
  },
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(migrations),
};

/** The names of every migration, in the order they run. */
export const MIGRATION_NAMES: readonly string[] = Object.keys(migrations);
