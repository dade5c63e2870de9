/**
 * A measurement for docs/reliability.md, not a test (it asserts nothing): one attacking user against
 * a channel of 20,000 presence entries on one instance with a private redis-server. For 10 s the user
 * reads presence on three sockets at 18 calls/s each, history pages of 200 on a fourth at 25/s, and
 * joins and leaves the channel in a loop on a fifth, while /healthz is probed every 100 ms. It prints
 * the redis-server's CPU (from /proc/<pid>/stat) and the slowest /healthz.
 *
 *   npm run build && npx tsx test/integration/read-budget.measure.ts            # the defaults
 *   npx tsx test/integration/read-budget.measure.ts --no-budgets                 # budgets off, for comparison
 */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { RedisPresence } from '../../src/adapters/presence/redis.js';
import { publishMany } from '../helpers/api.js';
import { call, closeAllClients, connect, type TestSocket } from '../helpers/client.js';
import { startInstance } from '../helpers/instance.js';
import { startRedis } from '../helpers/redis.js';
import { token } from '../helpers/tokens.js';

const USERS = 20_000;
const SECONDS = 10;
const CHANNEL = 'general';
const NO_BUDGETS = process.argv.includes('--no-budgets');
const OFF = { RATE_LIMIT_READS: '100000000/10s', PRESENCE_MAX_USERS: '100000', PRESENCE_CACHE_MS: '0', PRESENCE_NOTICE_INTERVAL_MS: '0' };

/** utime + stime of a process, in clock ticks (100 per second here). */
const cpuTicks = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
};

/** Calls `fn` `perSecond` times a second until `until`. */
async function every(perSecond: number, until: number, fn: () => Promise<unknown>): Promise<number> {
  let n = 0;
  while (Date.now() < until) {
    const started = Date.now();
    void fn().catch(() => undefined);
    n++;
    await new Promise((r) => setTimeout(r, Math.max(0, 1000 / perSecond - (Date.now() - started))));
  }
  return n;
}

const redis = await startRedis();
const instance = await startInstance({ env: { REDIS_URL: redis.url, LOG_LEVEL: 'warn', MAX_CONNECTIONS_PER_USER: '10', ...(NO_BUDGETS ? OFF : {}) } });
try {
  // 20,000 present users, kept alive by a presence node of this process (its heartbeat runs).
  const filler = new RedisPresence(redis.client(), { instanceId: 'filler', logger: pino({ level: 'silent' }) });
  await filler.start();
  for (let i = 0; i < USERS; i += 1000) {
    await Promise.all(Array.from({ length: 1000 }, (_, j) => filler.add(CHANNEL, `user-${String(i + j).padStart(5, '0')}`)));
  }
  await publishMany(instance.url, CHANNEL, 400);
  const jwt = await token('attacker');
  const sockets: TestSocket[] = [];
  for (let i = 0; i < 5; i++) sockets.push(await connect(instance.url, jwt));
  for (const s of sockets.slice(0, 4)) await call(s, 'join_channel', CHANNEL);

  const answers = { presence: { ok: 0, limited: 0, bytes: 0 }, history: { ok: 0, limited: 0 } };
  const record = (kind: 'presence' | 'history', ack: any) => {
    if (ack.ok) answers[kind].ok++;
    else if (ack.error?.code === 'RATE_LIMITED') answers[kind].limited++;
    if (kind === 'presence') answers.presence.bytes += JSON.stringify(ack).length;
  };
  let slowest = 0;
  let probes = 0;
  const pid = redis.proc.pid!;
  const t0 = Date.now();
  const ticks0 = cpuTicks(pid);
  const until = t0 + SECONDS * 1000;
  await Promise.all([
    ...sockets.slice(0, 3).map((s) => every(18, until, async () => record('presence', await call(s, 'presence', { channelId: CHANNEL })))),
    every(25, until, async () => record('history', await call(sockets[3]!, 'history', { channelId: CHANNEL, limit: 200 }))),
    every(10, until, async () => {
      await call(sockets[4]!, 'join_channel', CHANNEL);
      await call(sockets[4]!, 'leave_channel', CHANNEL);
    }),
    every(10, until, async () => {
      const started = performance.now();
      await fetch(`${instance.url}/healthz`);
      slowest = Math.max(slowest, performance.now() - started);
      probes++;
    }),
  ]);
  const seconds = (Date.now() - t0) / 1000;
  const redisCpu = ((cpuTicks(pid) - ticks0) / 100 / seconds) * 100;
  process.stdout.write(
    `${NO_BUDGETS ? 'budgets off' : 'default budgets'}: ${USERS} presence entries, ${seconds.toFixed(1)} s of attack\n` +
      `redis-server CPU: ${redisCpu.toFixed(1)} % of a core\n` +
      `/healthz: ${probes} probes, slowest ${slowest.toFixed(1)} ms\n` +
      `presence: ${answers.presence.ok} answered, ${answers.presence.limited} RATE_LIMITED, ${(answers.presence.bytes / 1e6).toFixed(1)} MB of acks\n` +
      `history (200 a page): ${answers.history.ok} answered, ${answers.history.limited} RATE_LIMITED\n`,
  );
  await filler.close();
} finally {
  closeAllClients();
  await instance.kill();
  await redis.stop();
}
