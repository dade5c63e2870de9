/**
 * describeStoreError: a store's start-up failure as a cause and a remedy. The errors reach it as the
 * store throws them: a StoreError with the driver's error as its cause, or (opening SQLite) the driver's
 * own error. The SQLite cases come from the real driver; PostgreSQL errors this machine cannot produce
 * (a wrong password: its PostgreSQL trusts every login) are built as `pg` builds them.
 * test/e2e/cli.test.ts covers refused connections, missing databases and unknown roles for real.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { describeStore, describeStoreError } from '../../src/adapters/store/describe-error.js';
import { openStore } from '../../src/adapters/store/index.js';
import { StoreError } from '../../src/ports/message-store.js';

const PG_URL = 'postgres://chat:hunter2@db.internal:6432/chat';
const silent = pino({ level: 'silent' });

/** An error as pg gives it: a message and a code (an errno name or a SQLSTATE). */
const driverError = (message: string, code?: string): Error => Object.assign(new Error(message), code ? { code } : {});
/** Wrapped as the store wraps it when a migration fails. */
const wrapped = (cause: unknown) => new StoreError('internal', 'database migration failed', { cause });

/** What the real SQLite driver throws on opening `path` and migrating. */
async function sqliteFailure(path: string): Promise<unknown> {
  try {
    const store = openStore(`sqlite:${path}`, silent);
    await store.migrate();
    await store.close();
  } catch (err) {
    return err;
  }
  throw new Error(`opening ${path} did not fail`);
}

describe('describeStoreError on PostgreSQL', () => {
  it('a refused connection: it names the address, asks whether it runs, and points at DATABASE_URL', () => {
    expect(describeStoreError(wrapped(driverError('connect ECONNREFUSED 10.0.0.5:6432', 'ECONNREFUSED')), PG_URL)).toEqual({
      cause: 'cannot reach PostgreSQL at db.internal:6432: connection refused',
      remedy: 'Is it running? Check DATABASE_URL.',
    });
  });

  it("a wrong password (28P01): authentication failed, with the server's reason, not the URL's password", () => {
    expect(describeStoreError(wrapped(driverError('password authentication failed for user "chat"', '28P01')), PG_URL)).toEqual({
      cause: 'PostgreSQL at db.internal:6432: authentication failed (password authentication failed for user "chat")',
      remedy: 'Check the user and password in DATABASE_URL.',
    });
  });

  it('a refused role (28000) is an authentication failure too', () => {
    expect(describeStoreError(wrapped(driverError('no pg_hba.conf entry for host "10.0.0.9", user "chat"', '28000')), PG_URL)?.cause).toBe(
      'PostgreSQL at db.internal:6432: authentication failed (no pg_hba.conf entry for host "10.0.0.9", user "chat")',
    );
  });

  it('a server that asks for a password DATABASE_URL lacks', () => {
    const err = driverError('SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string');
    expect(describeStoreError(wrapped(err), 'postgres://chat@db.internal/chat')).toEqual({
      cause: 'PostgreSQL at db.internal:5432: authentication failed (the server asks for a password, DATABASE_URL has none)',
      remedy: 'Add the password to DATABASE_URL.',
    });
  });

  it('a missing database (3D000) is named, with how to create it', () => {
    expect(describeStoreError(wrapped(driverError('database "chat" does not exist', '3D000')), PG_URL)).toEqual({
      cause: 'PostgreSQL at db.internal:6432 has no database "chat"',
      remedy: 'Create it (createdb chat) or fix the database name in DATABASE_URL.',
    });
  });

  it.each([
    ['getaddrinfo ENOTFOUND db.internal', 'ENOTFOUND', 'host not found'],
    ['connect ETIMEDOUT 10.0.0.5:6432', 'ETIMEDOUT', 'connection timed out'],
    ['Connection terminated due to connection timeout', undefined, 'connection timed out'],
    ['timeout exceeded when trying to connect', undefined, 'connection timed out'],
    ['connect EHOSTUNREACH 10.0.0.5:6432', 'EHOSTUNREACH', 'host unreachable'],
  ])('%s: cannot reach, %s', (message, code, reason) => {
    expect(describeStoreError(wrapped(driverError(message, code)), PG_URL)?.cause).toBe(`cannot reach PostgreSQL at db.internal:6432: ${reason}`);
  });

  it('an error it does not know is left to the caller', () => {
    expect(describeStoreError(wrapped(driverError('relation "channels" already exists', '42P07')), PG_URL)).toBeUndefined();
    expect(describeStoreError(new Error('Redis did not answer'), PG_URL)).toBeUndefined();
  });
});

describe('describeStoreError on SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-describe-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a path that is a folder: the real driver cannot open it', async () => {
    const problem = describeStoreError(await sqliteFailure(dir), `sqlite:${dir}`);
    expect(problem?.cause).toBe(`cannot open the SQLite database ${dir}`);
    expect(problem?.remedy).toMatch(/not a folder.*DATABASE_URL/);
  });

  it('a file that is not a database: the real driver refuses it', async () => {
    const file = join(dir, 'notes.txt');
    writeFileSync(file, 'not a database, '.repeat(512));
    const problem = describeStoreError(await sqliteFailure(file), `sqlite:${file}`);
    expect(problem?.cause).toBe(`${file} is not a usable SQLite database (file is not a database)`);
    expect(problem?.remedy).toContain('DATABASE_URL');
  });

  // Tests run as root here, which no permission stops: the errors are built as node:fs and better-sqlite3 throw them.
  it('no permission to create its directory (EACCES from mkdir) names that directory', () => {
    const err = Object.assign(driverError("EACCES: permission denied, mkdir '/srv/chat'", 'EACCES'), { path: '/srv/chat' });
    expect(describeStoreError(err, 'sqlite:/srv/chat/switchboard.db')).toEqual({
      cause: 'cannot write the SQLite database at /srv/chat: permission denied',
      remedy: 'Give this user write access there, or point DATA_DIR or DATABASE_URL at a writable place.',
    });
  });

  it('a read-only database file (SQLITE_READONLY)', () => {
    const err = wrapped(driverError('attempt to write a readonly database', 'SQLITE_READONLY'));
    expect(describeStoreError(err, 'sqlite:/srv/chat/switchboard.db')?.cause).toBe('cannot write the SQLite database at /srv/chat/switchboard.db: read-only');
  });
});

describe('describeStore', () => {
  it('names the store without credentials', () => {
    expect(describeStore(PG_URL)).toBe('PostgreSQL db.internal:6432/chat');
    expect(describeStore('sqlite:./data/switchboard.db')).toBe('SQLite ./data/switchboard.db');
  });
});
