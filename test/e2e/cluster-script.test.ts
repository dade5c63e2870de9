/**
 * `npm run cluster` as a reader runs it: progress lines, the ready line, a working token command, a
 * chat through its nginx, and Ctrl-C (SIGINT to the whole process group, as a terminal sends it)
 * stopping every part.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { call, closeAllClients, connect } from '../helpers/client.js';
import { ROOT } from '../helpers/instance.js';
import { waitFor } from '../helpers/ports.js';
import { createDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startProcess, type Proc } from '../helpers/processes.js';

let db: TestDatabase;
let dataDir: string;
let proc: Proc | undefined;

const listening = (port: number) =>
  new Promise<boolean>((res) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });

/**
 * A port p with p+1 … p+n-1 free too (the instances take consecutive ports), below the ephemeral
 * range so that outgoing connections of other processes do not take one between check and use.
 */
async function freeRange(n: number): Promise<number> {
  for (;;) {
    const p = 20_000 + Math.floor(Math.random() * 10_000);
    const busy = await Promise.all(Array.from({ length: n }, (_, i) => listening(p + i)));
    if (!busy.some(Boolean)) return p;
  }
}

beforeAll(async () => {
  db = await createDatabase('cluster_script');
  dataDir = mkdtempSync(join(tmpdir(), 'sb-cluster-script-'));
});

afterAll(async () => {
  closeAllClients();
  if (proc?.alive) {
    // An ordered stop (the script drains and stops its parts), then the hard way.
    process.kill(-proc.pid, 'SIGTERM');
    const t = setTimeout(() => proc!.killNow(), 20_000);
    await proc.exited;
    clearTimeout(t);
  }
  rmSync(dataDir, { recursive: true, force: true });
  await db?.drop();
});

test('npm run cluster: ready line, token command, chat through nginx, Ctrl-C stops everything', async () => {
  const basePort = await freeRange(4);
  const port = basePort + 3;
  const cluster = startProcess('npm', ['run', '--silent', 'cluster', '--', '--port', String(port), '--base-port', String(basePort)], {
    name: 'npm run cluster',
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: db.url, CLUSTER_DATA_DIR: dataDir, FORCE_COLOR: '0' },
    // Its own process group, like a terminal's foreground job: Ctrl-C goes to the whole group.
    detached: true,
  });
  proc = cluster;
  const { exited } = cluster;

  const url = `http://127.0.0.1:${port}`;
  await Promise.race([
    waitFor(() => cluster.output().split('\n').includes(`Switchboard cluster ready at ${url}`), 'the ready line', 60_000, 100),
    exited.then((code) => {
      throw new Error(`npm run cluster exited (${code}) before the ready line:\n${cluster.output()}`);
    }),
  ]);
  // Each part reported as it came up, before the ready line.
  const before = cluster.output().slice(0, cluster.output().indexOf('Switchboard cluster ready'));
  for (const line of [/redis-server ready at redis:\/\/127\.0\.0\.1:\d+/, /store: .*DATABASE_URL, shared/, /instance c1 ready/, /instance c2 ready/, /instance c3 ready/, /nginx ready at/])
    expect(before).toMatch(line);

  // The printed token command works, and its token is accepted by every instance behind nginx.
  const tokenLine = /^Token: DATA_DIR=(\S+) node dist\/cli\.js token alice$/m.exec(cluster.output());
  expect(tokenLine, `a token command in:\n${cluster.output()}`).not.toBeNull();
  const jwt = execFileSync(process.execPath, ['dist/cli.js', 'token', 'alice'], { cwd: ROOT, env: { ...process.env, DATA_DIR: tokenLine![1]! }, encoding: 'utf8' }).trim();
  const ids = new Set<string>();
  for (let i = 0; i < 3; i++) {
    const body = (await (await fetch(`http://127.0.0.1:${basePort + i}/healthz`)).json()) as { instanceId: string };
    ids.add(body.instanceId);
  }
  expect([...ids].sort()).toEqual(['c1', 'c2', 'c3']);
  const s = await connect(url, jwt, { transports: ['polling', 'websocket'], withCredentials: true });
  expect((await call(s, 'join_channel', 'general')).ok).toBe(true);
  const ack = await call(s, 'send_message', { channelId: 'general', content: 'hi from the cluster', clientMessageId: 'cluster-1' });
  expect(ack.ok).toBe(true);
  s.close();

  // Ctrl-C: the terminal signals the whole foreground group.
  process.kill(-cluster.pid, 'SIGINT');
  // npm waits for the script, then re-raises SIGINT on itself whatever the script did: the script's
  // own lines tell how the stop went.
  expect([0, 130, 'SIGINT']).toContain(await exited);
  expect(cluster.output()).toMatch(/Ctrl-C: stopping the cluster/);
  expect(cluster.output()).not.toMatch(/Stopping at once/);
  for (const line of [/nginx stopped/, /instance c1 stopped \(exit 0\)/, /instance c2 stopped \(exit 0\)/, /instance c3 stopped \(exit 0\)/, /redis-server stopped/])
    expect(cluster.output()).toMatch(line);
  for (const p of [port, basePort, basePort + 1, basePort + 2]) expect(await listening(p), `port ${p} closed`).toBe(false);
}, 120_000);
