/**
 * The chaos suite (issue 7 item 6). `npm run chaos` runs the short schedule: every fault once, under
 * three minutes. `npm run chaos -- --duration 10m` repeats the faults in random order for ten minutes.
 * `npm run chaos -- --storm 1000` measures the reconnect storm instead.
 *
 * Real processes throughout: 3 instances (dist/cli.js), a private redis-server, a fresh PostgreSQL
 * database, SDK clients. The last line is always
 * `chaos: acked <n> lost <n> duplicated <n> divergent <n> crashed <n> max-convergence-ms <n>`.
 */
import { parseArgs } from 'node:util';
import { sleep } from '../helpers/ports.js';
import { stopOnSignals } from '../helpers/processes.js';
import { FAULTS, type Fault } from './faults.js';
import { startFleet, type Fleet } from './fleet.js';
import { pct, runStorm } from './storm.js';
import { verify, type Verdict } from './verify.js';
import { buildWorld, type Slot, type World } from './world.js';

const CHANNELS = ['chaos-a', 'chaos-b', 'chaos-c'] as const;

function parseDuration(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new Error(`--duration takes a time like 90s or 10m, not "${v}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

const { values } = parseArgs({
  options: {
    duration: { type: 'string' },
    storm: { type: 'string' },
    clients: { type: 'string' },
    'send-every': { type: 'string' },
    'self-check': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(`usage: npm run chaos [-- --duration 10m] [-- --storm 1000] [--clients 9] [--send-every 200]\n`);
  process.exit(0);
}

const t0 = Date.now();
const stamp = () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s`;
const log = (line: string) => process.stdout.write(`[chaos ${stamp()}] ${line}\n`);

let world: World | undefined;
let fleet: Fleet | undefined;
let tearingDown: Promise<void> | undefined;
const teardown = () =>
  (tearingDown ??= (async () => {
    fleet?.close();
    await world?.teardown();
  })());
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (err: unknown) => {
    log(`${event} in the harness: ${(err as Error)?.stack ?? String(err)}`);
    void teardown().finally(() => {
      process.stdout.write(`chaos: acked ${fleet?.acked.length ?? 0} lost -1 duplicated -1 divergent -1 crashed ${world?.crashes.length ?? 0} max-convergence-ms -1\n`);
      process.exit(1);
    });
  });
}
stopOnSignals((signal) => log(`${signal}: stopping every process`), teardown);

interface Window {
  name: string;
  start: number;
  end: number;
}

/** The fault during which (or the last one before which) a moment fell. */
const faultAt = (windows: Window[], t: number): string => {
  const during = windows.find((w) => t >= w.start && t <= w.end);
  if (during) return `during "${during.name}"`;
  const next = windows.find((w) => w.start > t);
  if (next && next.start - t <= 1000) return `${next.start - t} ms before "${next.name}"`;
  const before = windows.filter((w) => w.end < t).at(-1);
  return before ? `${Math.round((t - before.end) / 100) / 10} s after "${before.name}"` : 'before the first fault';
};

function printTable(v: Verdict, fleet: Fleet, world: World, faultsRun: string[], elapsedMs: number, windows: Window[]): void {
  const rows: [string, string][] = [
    ['sending under faults', `${(elapsedMs / 1000).toFixed(0)} s (${faultsRun.length} faults)`],
    ['clients', `${fleet.members.length} (${fleet.members.filter((m) => m.proxied).length} behind a droppable network)`],
    ['messages acknowledged', String(v.acked)],
    ['messages stored', String(v.stored)],
    ['acknowledged but missing from the store', String(v.lost)],
    ['stored twice', String(v.duplicated)],
    ['channels with seq gaps', String(v.gaps)],
    ['members whose view differs from the store', `${v.divergent} (after ${v.settleMs} ms of convergence)`],
    ['slowest convergence (stored → last member)', `${v.maxConvergenceMs} ms (stored ${faultAt(windows, v.slowestStoredAt)}; last to get it: ${v.slowestMember})`],
    ['failed sends by code', fleet.failures.size === 0 ? 'none' : [...fleet.failures].map(([k, n]) => `${k} ${n}`).join(', ')],
    ['SDK errors outside sends', fleet.sdkErrors.size === 0 ? 'none' : [...fleet.sdkErrors].map(([k, n]) => `${k} ${n}`).join(', ')],
    ['process crashes (unexpected exits)', String(world.crashes.length)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\nfaults injected:\n${faultsRun.map((f, i) => `  ${String(i + 1).padStart(2)}. ${f}`).join('\n')}\n\n`);
  process.stdout.write(`| ${'check'.padEnd(w)} | result |\n|${'-'.repeat(w + 2)}|--------|\n`);
  for (const [k, val] of rows) process.stdout.write(`| ${k.padEnd(w)} | ${val} |\n`);
  for (const e of v.lostExamples) process.stdout.write(`  lost: ${e}\n`);
  for (const e of v.divergentExamples) process.stdout.write(`  divergent: ${e}\n`);
  for (const c of world.crashes) process.stdout.write(`  crash: instance ${c.slot} exit ${c.exit} (expected ${c.expected ?? 'nothing'})\n`);
  process.stdout.write('\n');
}

async function chaos(durationMs: number | undefined): Promise<number> {
  const direct = Number(values.clients ?? 9);
  const proxied = 3;
  log(`setting up: private redis-server, fresh PostgreSQL database, 3 instances, ${direct + proxied} SDK clients`);
  world = await buildWorld({ instances: 3, channels: CHANNELS, log });
  const w = world;
  log(`instances ${w.slots.map((s) => `${s.name}=:${s.port}`).join(' ')}; PostgreSQL via :${w.db.proxy.port}; redis :${w.redis.port}`);
  fleet = startFleet({
    direct,
    proxied,
    channels: CHANNELS,
    urls: w.urls(),
    proxiedUrls: w.proxiedUrls(),
    sendEveryMs: Number(values['send-every'] ?? 200),
    maxInflight: 3,
  });
  const f = fleet;
  const connectDeadline = Date.now() + 30_000;
  while (f.members.some((m) => m.client.state.status !== 'connected')) {
    if (Date.now() > connectDeadline) throw new Error('clients did not connect within 30 s');
    await sleep(100);
  }
  f.startSending();
  const started = Date.now();
  log('all clients connected; sending');

  let turn = 0;
  const ctx = {
    world: w,
    log,
    pick: (): Slot => w.slots[turn++ % w.slots.length]!,
  };
  const progress = () =>
    `acked ${f.acked.length}, in flight ${f.pending()}, failed ${[...f.failures.values()].reduce((a, b) => a + b, 0)}, crashes ${w.crashes.length}`;

  const faultsRun: string[] = [];
  const windows: Window[] = [];
  const runFault = async (fault: Fault) => {
    log(`fault ${faultsRun.length + 1}: ${fault.name} (${progress()})`);
    const start = Date.now();
    await fault.run(ctx);
    windows.push({ name: fault.name, start, end: Date.now() });
    faultsRun.push(fault.name);
    log(`recovered from: ${fault.name} (${progress()})`);
  };

  await sleep(3000);
  if (durationMs === undefined) {
    for (const fault of FAULTS) {
      await runFault(fault);
      await sleep(1500);
    }
  } else {
    const end = started + durationMs;
    while (Date.now() < end) {
      const round = [...FAULTS].sort(() => Math.random() - 0.5);
      for (const fault of round) {
        if (Date.now() >= end) break;
        await runFault(fault);
        await sleep(3000 + Math.random() * 4000);
      }
    }
  }

  log(`schedule done; letting the system settle, then stopping the senders (${progress()})`);
  await sleep(2000);
  const scheduleMs = Date.now() - started;
  await f.stopSending();
  log(`every send settled (${progress()}); checking the store and every member's view`);
  if (values['self-check']) await sabotage(w, f);
  const verdict = await verify(f, w.pool, CHANNELS, 60_000, log);
  printTable(verdict, f, w, faultsRun, scheduleMs, windows);
  const crashed = w.crashes.length;
  const failed = verdict.lost > 0 || verdict.duplicated > 0 || verdict.divergent > 0 || verdict.gaps > 0 || crashed > 0 || verdict.acked === 0;
  process.stdout.write(
    `chaos: acked ${verdict.acked} lost ${verdict.lost} duplicated ${verdict.duplicated} divergent ${verdict.divergent} crashed ${crashed} max-convergence-ms ${verdict.maxConvergenceMs}\n`,
  );
  return failed ? 1 : 0;
}

/**
 * `--self-check`: proves the checks are not vacuous. Removes one acknowledged message from the store
 * and stores a second copy of another, then the run must report lost 1, duplicated 1, divergent > 0
 * and exit non-zero.
 */
async function sabotage(w: World, f: Fleet): Promise<void> {
  const victim = f.acked[Math.floor(f.acked.length / 2)]!;
  const copied = f.acked[Math.floor(f.acked.length / 3)]!;
  await w.pool.query('DELETE FROM messages WHERE id = $1', [victim.message.id]);
  await w.pool.query(
    `INSERT INTO messages (id, channel_id, seq, user_id, content, client_message_id, created_at)
     SELECT left(id, 34) || '-copy', channel_id, (SELECT MAX(seq) + 1 FROM messages m2 WHERE m2.channel_id = m.channel_id), user_id, content, left(client_message_id, 58) || '-copy', created_at
     FROM messages m WHERE id = $1`,
    [copied.message.id],
  );
  log(`self-check: deleted ${victim.content} and stored ${copied.content} twice; the run must now fail`);
}

async function storm(n: number): Promise<number> {
  log(`storm: setting up a private redis-server, a fresh PostgreSQL database and 3 instances for ${n} clients`);
  world = await buildWorld({ instances: 3, channels: CHANNELS, log });
  const r = await runStorm(world, n, log);
  const within = r.backTimes.filter((t) => t <= 60_000).length;
  const rows: [string, string][] = [
    ['clients', String(r.clients)],
    ['instances restarted at once', String(world.slots.length)],
    ['back (connected and re-joined)', `${r.back}/${r.clients}`],
    ['back within 60 s', `${within}/${r.clients}`],
    ['time to the last client back', `${r.backTimes.at(-1) ?? '-'} ms`],
    ['p50 / p95 / p99', `${pct(r.backTimes, 50)} / ${pct(r.backTimes, 95)} / ${pct(r.backTimes, 99)} ms`],
    ['process crashes (unexpected exits)', String(r.crashed)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\n| ${'reconnect storm'.padEnd(w)} | result |\n|${'-'.repeat(w + 2)}|--------|\n`);
  for (const [k, v] of rows) process.stdout.write(`| ${k.padEnd(w)} | ${v} |\n`);
  process.stdout.write(`\nstorm: clients ${r.clients} back ${within} within-60s ${within === r.clients ? 'yes' : 'no'} max-ms ${r.backTimes.at(-1) ?? -1} crashed ${r.crashed}\n`);
  return within === r.clients && r.crashed === 0 ? 0 : 1;
}

let code = 1;
try {
  code = values.storm !== undefined ? await storm(Number(values.storm)) : await chaos(parseDuration(values.duration));
} catch (err) {
  log(`chaos run failed: ${(err as Error).stack ?? String(err)}`);
  code = 1;
  if (!process.stdout.writableEnded) {
    process.stdout.write(
      `chaos: acked ${fleet?.acked.length ?? 0} lost -1 duplicated -1 divergent -1 crashed ${world?.crashes.length ?? 0} max-convergence-ms -1\n`,
    );
  }
} finally {
  await teardown();
}
process.exit(code);
