/**
 * A SQLite file locked by another process never blocks the event loop (issue 13, item 4): while a
 * second process holds `BEGIN IMMEDIATE`, probes and other sockets are answered before the lock is
 * released, and a send is stored once after the release, or answered UNAVAILABLE with nothing stored.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from 'switchboard-client/protocol';
import { call, closeAllClients, connect } from '../helpers/client.js';
import { ROOT } from '../helpers/instance.js';
import { startProcess, type Proc } from '../helpers/processes.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { token } from '../helpers/tokens.js';

/**
 * Holds the write lock of `file` for `holdMs` in another process. It writes `marker` just before it
 * commits: whatever is answered while `marker` does not exist was answered while the lock was held.
 */
const HOLDER = `
const Database = require('better-sqlite3');
const [file, holdMs, marker] = process.argv.slice(1);
const db = new Database(file, { timeout: 10000 });
db.exec('BEGIN IMMEDIATE');
db.prepare("UPDATE channels SET name = name WHERE id = 'general'").run();
process.stdout.write('locked\\n');
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(holdMs));
require('node:fs').writeFileSync(marker, '');
db.exec('COMMIT');
process.stdout.write('released\\n');
`;

function holdLock(file: string, holdMs: number, marker: string): Promise<Proc> {
  const holder = startProcess(process.execPath, ['-e', HOLDER, file, String(holdMs), marker], { cwd: ROOT, name: 'lock holder' });
  return holder.waitUntil(() => holder.output().includes('locked'), 'the lock holder to lock', 10_000, 10).then(() => holder);
}

describe.each([
  ['stored once after the release', { lockTimeoutMs: 10_000, holdMs: 1500 }],
  ['UNAVAILABLE with nothing stored when the lock outlasts SQLITE_LOCK_TIMEOUT_MS', { lockTimeoutMs: 300, holdMs: 1500 }],
])('a send while another process holds the lock: %s', (outcome, o) => {
  let dir: string;
  let server: TestServer;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-lock-'));
    server = await startServer({ DATABASE_URL: `sqlite:${join(dir, 'chat.db')}`, SQLITE_LOCK_TIMEOUT_MS: String(o.lockTimeoutMs) });
  });
  afterEach(() => closeAllClients());
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('probes and other sockets are answered while the lock is held', async () => {
    const marker = join(dir, 'releasing');
    const sender = await connect(server.url, await token('locked-sender'));
    const reader = await connect(server.url, await token('locked-reader'));
    await call(sender, 'join_channel', 'general');
    await call(reader, 'join_channel', 'general');
    const holder = await holdLock(join(dir, 'chat.db'), o.holdMs, marker);

    const send = call(sender, 'send_message', { channelId: 'general', content: 'during the lock', clientMessageId: 'locked-1' });
    const healthz = fetch(`${server.url}/healthz`).then((r) => ({ status: r.status, whileLocked: !existsSync(marker) }));
    const history = call(reader, 'history', { channelId: 'general' }).then((ack) => ({ ok: ack.ok, whileLocked: !existsSync(marker) }));
    expect(await healthz).toEqual({ status: 200, whileLocked: true });
    expect(await history).toEqual({ ok: true, whileLocked: true });

    const ack = await send;
    await holder.exited;
    const stored = (await call(reader, 'history', { channelId: 'general' })).messages;
    if (outcome.startsWith('stored')) {
      expect(ack).toMatchObject({ ok: true, message: { seq: 1, content: 'during the lock' } });
      expect(stored).toHaveLength(1);
    } else {
      expect(ack).toMatchObject({ ok: false, error: { code: ErrorCode.UNAVAILABLE } });
      expect(stored).toEqual([]);
      // The retry, once the file is free, stores it once.
      expect(await call(sender, 'send_message', { channelId: 'general', content: 'during the lock', clientMessageId: 'locked-1' })).toMatchObject({ ok: true, message: { seq: 1 } });
    }
  });
});
