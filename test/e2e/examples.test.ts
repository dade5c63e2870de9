/** The README's terminal chat (examples/chat.mjs), as a newcomer runs it, on a port other than 3000. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../helpers/ports.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { token } from '../helpers/tokens.js';

const EXAMPLE = join(import.meta.dirname, '../../examples/chat.mjs');
const running: ChildProcess[] = [];

function chat(args: string[], env: Record<string, string | undefined>) {
  const child = spawn(process.execPath, [EXAMPLE, ...args], { env: { ...process.env, SWITCHBOARD_URL: undefined, ...env }, stdio: 'pipe' });
  running.push(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  return { child, output: () => out };
}

describe('examples/chat.mjs', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterEach(() => {
    for (const c of running.splice(0)) c.kill('SIGKILL');
  });
  afterAll(() => server.close());

  it('chats through the server named by SWITCHBOARD_URL', async () => {
    const url = server.url;
    expect(new URL(url).port).not.toBe('3000');
    const alice = chat([await token('alice')], { SWITCHBOARD_URL: url });
    const bob = chat([await token('bob')], { SWITCHBOARD_URL: url });
    await waitFor(() => alice.output().includes('joined #general') && bob.output().includes('joined #general'), 'both joined');
    alice.child.stdin.write('hello from alice\n');
    await waitFor(() => bob.output().match(/\[\d+\] alice: hello from alice/), 'bob to see alice');
    expect(alice.output()).toContain(`connecting to ${url}`);
  });

  it('says which address it uses and how to change it, and what to check when nothing answers there', async () => {
    const byDefault = chat([await token('carol')], {});
    await waitFor(() => byDefault.output().includes('connecting to http://127.0.0.1:3000 (set SWITCHBOARD_URL for another address)'), 'the default address');
    const closed = `http://127.0.0.1:${await freePort()}`;
    const nowhere = chat([await token('carol')], { SWITCHBOARD_URL: closed });
    await waitFor(() => nowhere.output().includes(`cannot reach ${closed}: is the server running there? Set SWITCHBOARD_URL`), 'the hint');
  });
});
