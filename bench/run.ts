/**
 * `npm run bench`: the chat-fanout workload against Switchboard, the common recipe (bench/reference)
 * and a raw `ws` broadcast server (bench/raw), each freshly started, alternately, `--reps` times.
 * Issue 6 specifies the workload; docs/performance.md explains the method and the figures.
 *
 *   npm run bench                      full run (3 reps, all three systems, idle RSS and handshakes)
 *   npm run bench -- --quick           < 3 minutes; last line: ratio max-delivered <x> cpu-per-delivery <y>
 *   npm run bench -- --smoke           one low step of Switchboard and the reference; checks the machinery
 *   flags: --channels 10 --members 50 --senders 5 --payload 64 --reps 3 --store sqlite|sqlite-shared|postgres
 *          --systems switchboard,reference,raw --adapter sharded|classic|streams --workers 2
 *          --start-rate 200 --factor 1.5 --warmup 3 --measure 10 --idle 1000,5000 --max-steps 14
 *          --profile (node --cpu-prof on the servers; profiles under the results directory)
 *          --env NAME=value (extra env for Switchboard) --dist <dir> (another Switchboard build, for A/B)
 *          --no-batch (Switchboard's clients do not ask for new_messages frames)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ConnSpec, FromWorker, ToWorker } from './lib/ipc.js';
import { merge, percentiles } from './lib/histogram.js';
import { ROOT } from '../test/helpers/instance.js';
import { sleep } from '../test/helpers/ports.js';
import { killAll, stopOnSignals, track } from '../test/helpers/processes.js';
import { loadAverage, procSample } from './lib/procs.js';
import { charts, html, summarize, table, type IdleResult, type RepResult, type StepResult, type Summary } from './lib/report.js';
import { BENCH_SECRET, benchCleanups, startSystem, type RunningSystem, type StoreKind, type SystemName, type Watched } from './lib/systems.js';

const { values: args } = parseArgs({
  options: {
    channels: { type: 'string' },
    members: { type: 'string' },
    senders: { type: 'string' },
    payload: { type: 'string' },
    reps: { type: 'string' },
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    store: { type: 'string', default: 'sqlite' },
    systems: { type: 'string' },
    adapter: { type: 'string' },
    workers: { type: 'string' },
    'start-rate': { type: 'string' },
    factor: { type: 'string' },
    warmup: { type: 'string' },
    measure: { type: 'string' },
    idle: { type: 'string' },
    'max-steps': { type: 'string' },
    profile: { type: 'boolean', default: false },
    out: { type: 'string' },
    env: { type: 'string', multiple: true },
    dist: { type: 'string' },
    'no-batch': { type: 'boolean', default: false },
  },
  strict: true,
});

const mode = args.smoke ? 'smoke' : args.quick ? 'quick' : 'full';
const num = (v: string | undefined, d: number) => {
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`bad number: ${v}`);
  return n;
};
const cfg = {
  channels: num(args.channels, mode === 'smoke' ? 2 : 10),
  members: num(args.members, mode === 'smoke' ? 6 : 50),
  senders: num(args.senders, mode === 'smoke' ? 2 : 5),
  payload: num(args.payload, 64),
  reps: num(args.reps, mode === 'full' ? 3 : 1),
  store: args.store as StoreKind,
  systems: (args.systems ?? (mode === 'full' ? 'switchboard,reference,raw' : 'switchboard,reference')).split(',') as SystemName[],
  adapter: args.adapter,
  workers: num(args.workers, 2),
  startRate: num(args['start-rate'], mode === 'smoke' ? 20 : 200),
  factor: num(args.factor, mode === 'full' ? 1.5 : 2),
  warmupMs: num(args.warmup, mode === 'smoke' ? 1 : mode === 'quick' ? 2 : 3) * 1000,
  measureMs: num(args.measure, mode === 'full' ? 10 : mode === 'quick' ? 5 : 2) * 1000,
  idle: (args.idle ?? (mode === 'full' ? '1000,5000' : '')).split(',').filter(Boolean).map(Number),
  maxSteps: num(args['max-steps'], mode === 'smoke' ? 1 : mode === 'quick' ? 8 : 14),
  instances: 3,
  dist: args.dist,
  batch: !args['no-batch'],
  extraEnv: Object.fromEntries((args.env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
};
if (!['sqlite', 'sqlite-shared', 'postgres'].includes(cfg.store)) throw new Error('--store is sqlite, sqlite-shared or postgres');
for (const s of cfg.systems) if (!['switchboard', 'reference', 'raw'].includes(s)) throw new Error(`unknown system ${s}`);
if (cfg.senders > cfg.members) throw new Error('--senders must not exceed --members');

const stamp = new Date().toISOString().replace(/:/g, '').replace(/\.\d+Z$/, 'Z');
const outDir = args.out ?? join(ROOT, 'bench/results', `${stamp}${mode === 'full' ? '' : `-${mode}`}`);
const channelIds = Array.from({ length: cfg.channels }, (_, i) => `bench-${i}`);

// ---------------------------------------------------------------- progress (stderr)
const tty = process.stderr.isTTY;
let progressLine = '';
function progress(text: string, frac?: number): void {
  const bar = frac === undefined ? '' : `[${'█'.repeat(Math.round(frac * 20)).padEnd(20, '░')}] `;
  const line = `${bar}${text}`;
  if (tty) process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`);
  else if (line !== progressLine && frac === undefined) process.stderr.write(`${line}\n`);
  progressLine = line;
}
function log(text: string): void {
  if (tty) process.stderr.write('\r\x1b[2K');
  process.stderr.write(`${text}\n`);
}

// ---------------------------------------------------------------- load generator processes
class Worker {
  readonly proc: ChildProcess;
  private queue: FromWorker[] = [];
  private waiters: ((m: FromWorker) => void)[] = [];
  constructor(readonly index: number) {
    this.proc = track(
      fork(join(ROOT, 'bench/lib/loadgen.ts'), [], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        cwd: ROOT,
      }),
      { name: `loadgen-${index}` },
    ).child;
    this.proc.on('message', (m: FromWorker) => {
      const w = this.waiters.shift();
      if (w) w(m);
      else this.queue.push(m);
    });
    this.proc.once('exit', (code) => {
      for (const w of this.waiters.splice(0)) w({ type: 'closed' });
      if (code && code !== 0) log(`load generator ${index} exited with ${code}`);
    });
  }
  send(m: ToWorker): void {
    this.proc.send(m);
  }
  next<T extends FromWorker['type']>(type: T, timeoutMs = 120_000): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load generator ${this.index}: no ${type} within ${timeoutMs} ms`)), timeoutMs);
      const take = (m: FromWorker) => {
        clearTimeout(timer);
        if (m.type === type) resolve(m as Extract<FromWorker, { type: T }>);
        else if (m.type === 'closed') reject(new Error(`load generator ${this.index} exited while waiting for ${type}`));
        else reject(new Error(`load generator ${this.index}: expected ${type}, got ${m.type}`));
      };
      const queued = this.queue.shift();
      if (queued) take(queued);
      else this.waiters.push(take);
    });
  }
  async close(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    this.send({ type: 'close' });
    await Promise.race([this.next('closed', 5000).catch(() => undefined), sleep(5000)]);
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

async function startWorkers(): Promise<Worker[]> {
  const ws = Array.from({ length: cfg.workers }, (_, i) => new Worker(i));
  await Promise.all(ws.map((w) => w.next('ready', 30_000)));
  return ws;
}

/** Connects a population spread round-robin over the system's instances and the workers. */
async function connect(sys: RunningSystem, workers: Worker[], conns: ConnSpec[], join: boolean): Promise<{ ok: number; failed: number; handshakesPerS: number; firstError?: string }> {
  const shares = workers.map((_, w) => conns.filter((c) => c.index % workers.length === w));
  workers.forEach((w, i) => w.send({ type: 'connect', conns: shares[i]!, secret: BENCH_SECRET, batch: sys.batch, join, concurrency: 32 }));
  const res = await Promise.all(workers.map((w) => w.next('connected', 180_000)));
  const start = Math.min(...res.map((r) => r.startedAt));
  const end = Math.max(...res.map((r) => r.doneAt));
  const ok = res.reduce((a, r) => a + r.ok, 0);
  const failed = res.reduce((a, r) => a + r.failed, 0);
  const firstError = res.find((r) => r.firstError)?.firstError;
  if (join) {
    const j = await Promise.all(workers.map((w) => w.next('joined', 180_000)));
    const jf = j.reduce((a, r) => a + r.failed, 0);
    if (jf > 0) throw new Error(`${jf} joins failed: ${j.find((r) => r.firstError)?.firstError}`);
  }
  return { ok, failed, handshakesPerS: ok / Math.max(0.001, (end - start) / 1000), ...(firstError ? { firstError } : {}) };
}

function population(sys: RunningSystem, rep: number, channels: number, members: number, senders: number, offset = 0): ConnSpec[] {
  const conns: ConnSpec[] = [];
  for (let c = 0; c < channels; c++) {
    for (let k = 0; k < members; k++) {
      const index = c * members + k;
      conns.push({
        index,
        url: sys.urls[index % sys.urls.length]!,
        userId: `r${rep}-u${offset + index}`,
        channel: channelIds[c % channelIds.length]!,
        sender: k < senders,
      });
    }
  }
  return conns;
}

// ---------------------------------------------------------------- measurement
interface CpuSnap {
  at: number;
  procs: Map<string, { cpuMs: number; sysMs: number; rss: number; role: string }>;
}
function snapshot(watched: (Watched | { role: 'loadgen'; name: string; pid: number })[]): CpuSnap {
  const procs = new Map<string, { cpuMs: number; sysMs: number; rss: number; role: string }>();
  for (const w of watched) {
    const s = procSample(w.pid);
    if (s) procs.set(w.name, { ...s, role: w.role });
  }
  return { at: performance.now(), procs };
}

async function runStep(sys: RunningSystem, workers: Worker[], step: number, rate: number): Promise<StepResult> {
  const watched = [...(await sys.watched()), ...workers.map((w) => ({ role: 'loadgen' as const, name: `loadgen-${w.index}`, pid: w.proc.pid! }))];
  const perWorker = rate / workers.length;
  for (const w of workers) w.send({ type: 'step', step, rate: perWorker, warmupMs: cfg.warmupMs, measureMs: cfg.measureMs, payload: cfg.payload, acks: sys.acks });
  const t0 = Date.now();
  const total = cfg.warmupMs + cfg.measureMs;
  const ticker = setInterval(() => progress(`${progressPrefix} step ${step}: ${rate} sent/s`, Math.min(1, (Date.now() - t0) / total)), 250);
  await sleep(cfg.warmupMs);
  const a = snapshot(watched);
  const monoFrom = Number(process.hrtime.bigint() / 1000n);
  await sleep(cfg.measureMs);
  const b = snapshot(watched);
  const monoTo = Number(process.hrtime.bigint() / 1000n);
  const loadAvg = loadAverage();
  const done = await Promise.all(workers.map((w) => w.next('stepDone', 60_000)));
  clearInterval(ticker);
  const seconds = cfg.measureMs / 1000;
  const sent = done.reduce((s, d) => s + d.sentMeasured, 0);
  const delivered = done.reduce((s, d) => s + d.deliveries, 0);
  const frames = done.reduce((s, d) => s + d.frames, 0);
  const expected = sent * cfg.members;
  const [p50, p99, p999, max] = percentiles(merge(done.map((d) => d.hist)), [50, 99, 99.9, 100]);
  const wall = (b.at - a.at) / 1000;
  const cpu: Record<string, number> = {};
  const rss: Record<string, number> = {};
  const byRole: Record<string, number> = { server: 0, redis: 0, postgres: 0, loadgen: 0 };
  let serverSysMs = 0;
  for (const [name, end] of b.procs) {
    const start = a.procs.get(name);
    if (!start) continue;
    const ms = end.cpuMs - start.cpuMs;
    cpu[name] = (ms / 1000 / wall) * 100;
    rss[name] = end.rss;
    byRole[end.role] = (byRole[end.role] ?? 0) + ms;
    if (end.role === 'server') serverSysMs += end.sysMs - start.sysMs;
  }
  const serverSideUs = (byRole['server']! + byRole['redis']! + byRole['postgres']!) * 1000;
  const deliveredPerS = delivered / seconds;
  const ratio = expected > 0 ? delivered / expected : 0;
  const dropped = done.reduce((s, d) => s + d.dropped, 0);
  const acksErr = done.reduce((s, d) => s + d.acksErr, 0);
  const reasons: string[] = [];
  if (ratio < 0.999) reasons.push(`delivered ${(ratio * 100).toFixed(2)}% < 99.9%`);
  if (p99 === undefined || p99 > 100) reasons.push(`p99 ${p99?.toFixed(1) ?? '–'} ms > 100 ms`);
  if (dropped > 0) reasons.push(`${dropped} clients dropped`);
  if (acksErr > 0) reasons.push(`${acksErr} send errors (${done.find((d) => d.firstAckError)?.firstAckError})`);
  const sentPerS = sent / seconds;
  if (sentPerS < rate * 0.95) reasons.push(`the load generator sent only ${sentPerS.toFixed(0)}/s of ${rate}/s`);
  return {
    step,
    rate,
    sentPerS,
    deliveredPerS,
    expected,
    delivered,
    ratio,
    p50,
    p99,
    p999,
    max,
    perFrame: frames > 0 ? delivered / frames : 0,
    cpu,
    rss,
    serverCpuPct: (byRole['server']! / 1000 / wall) * 100,
    serverSysPct: (serverSysMs / 1000 / wall) * 100,
    redisCpuPct: (byRole['redis']! / 1000 / wall) * 100,
    pgCpuPct: (byRole['postgres']! / 1000 / wall) * 100,
    loadgenCpuPct: (byRole['loadgen']! / 1000 / wall) * 100,
    cpuUsPerDelivery: delivered > 0 ? serverSideUs / (delivered * (wall / seconds)) : NaN,
    instanceCpuUsPerDelivery: delivered > 0 ? (byRole['server']! * 1000) / (delivered * (wall / seconds)) : NaN,
    acksOk: done.reduce((s, d) => s + d.acksOk, 0),
    acksErr,
    dropped,
    loadAvg,
    pass: reasons.length === 0,
    reason: reasons.join('; '),
    monotonicUs: [monoFrom, monoTo],
  };
}

let progressPrefix = '';

function logStep(s: StepResult, note = ''): void {
  log(
    `${progressPrefix} ${String(s.rate).padStart(6)} sent/s → ${s.deliveredPerS.toFixed(0).padStart(7)} deliv/s, ${(s.ratio * 100).toFixed(2)}%, ` +
      `p50 ${s.p50?.toFixed(1)} p99 ${s.p99?.toFixed(1)} ms, srv ${s.serverCpuPct.toFixed(0)}% (kernel ${s.serverSysPct.toFixed(0)}%) redis ${s.redisCpuPct.toFixed(0)}% gen ${s.loadgenCpuPct.toFixed(0)}%, ` +
      `${s.cpuUsPerDelivery.toFixed(1)} µs/deliv, ${s.perFrame.toFixed(2)} msg/frame, load ${s.loadAvg} ${s.pass ? 'pass' : `FAIL: ${s.reason}`}${note}`,
  );
}

function stepRates(): number[] {
  const rates: number[] = [];
  let r = cfg.startRate;
  for (let i = 0; i < 40; i++) {
    rates.push(Math.round(r));
    r *= cfg.factor;
  }
  return rates;
}

const systemOptions = (profileDir?: string) => ({
  instances: cfg.instances,
  channels: channelIds,
  store: cfg.store,
  ...(cfg.adapter ? { adapter: cfg.adapter } : {}),
  env: { SHUTDOWN_NOTICE_MS: '100', SHUTDOWN_TIMEOUT_MS: '5000', ...cfg.extraEnv },
  ...(cfg.dist ? { dist: cfg.dist } : {}),
  batch: cfg.batch,
  ...(profileDir ? { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] } : {}),
});

async function loadRun(name: SystemName, rep: number): Promise<RepResult> {
  const result: RepResult = { system: name, rep, steps: [], maxDeliveredPerS: 0, maxSentPerS: 0, idle: [] };
  progressPrefix = `[rep ${rep}/${cfg.reps}] ${name}`;
  progress(`${progressPrefix}: starting`);
  const profileDir = args.profile ? join(outDir, 'profiles', `${name}-rep${rep}`) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const sys = await startSystem(name, systemOptions(profileDir));
  let workers: Worker[] = [];
  try {
    workers = await startWorkers();
    const conns = population(sys, rep, cfg.channels, cfg.members, cfg.senders);
    progress(`${progressPrefix}: connecting ${conns.length} clients`);
    const c = await connect(sys, workers, conns, true);
    if (c.failed > 0) throw new Error(`${c.failed} of ${conns.length} connections failed: ${c.firstError}`);
    await sleep(500);
    const rates = stepRates();
    let lastPass: StepResult | undefined;
    let firstFail: StepResult | undefined;
    for (let i = 0; i < cfg.maxSteps && i < rates.length; i++) {
      let s = await runStep(sys, workers, result.steps.length + 1, rates[i]!);
      logStep(s);
      // The machine is shared: a step that fails only on latency is run once more before it counts.
      if (!s.pass && mode !== 'smoke' && s.dropped === 0 && s.ratio >= 0.999) {
        await sleep(1000);
        const again = await runStep(sys, workers, result.steps.length + 1, rates[i]!);
        logStep(again, ' (repeat)');
        s = again;
      }
      result.steps.push(s);
      if (s.pass) lastPass = s;
      else {
        firstFail = s;
        break;
      }
      if (s.dropped > 0) break;
    }
    // One bisection between the last pass and the first failure sharpens the maximum.
    if (lastPass && firstFail && mode !== 'smoke' && firstFail.dropped === 0) {
      const mid = Math.round((lastPass.rate + firstFail.rate) / 2);
      if (mid > lastPass.rate && mid < firstFail.rate) {
        await sleep(1000);
        const s = await runStep(sys, workers, result.steps.length + 1, mid);
        result.steps.push(s);
        logStep(s, ' (bisection)');
      }
    }
    const passing = result.steps.filter((s) => s.pass);
    const best = passing.sort((x, y) => y.deliveredPerS - x.deliveredPerS)[0];
    result.maxDeliveredPerS = best?.deliveredPerS ?? 0;
    result.maxSentPerS = best?.sentPerS ?? 0;
    result.at200 = result.steps.find((s) => s.rate === 200);
  } catch (err) {
    result.error = (err as Error).message;
    log(`${progressPrefix}: ERROR ${result.error}`);
  } finally {
    await Promise.all(workers.map((w) => w.close()));
    await sys.stop();
  }
  return result;
}

/** RSS per idle connected+joined connection and handshakes/s, on a freshly started system. */
async function idleRun(name: SystemName, rep: number, into: RepResult): Promise<void> {
  if (cfg.idle.length === 0) return;
  progressPrefix = `[rep ${rep}/${cfg.reps}] ${name} idle`;
  progress(`${progressPrefix}: starting`);
  const sys = await startSystem(name, systemOptions());
  let workers: Worker[] = [];
  try {
    workers = await startWorkers();
    await sleep(1000);
    const servers = (await sys.watched()).filter((w) => w.role === 'server');
    const rssOf = () => servers.reduce((s, w) => s + (procSample(w.pid)?.rss ?? 0), 0);
    const base = rssOf();
    let connected = 0;
    for (const n of [...cfg.idle].sort((a, b) => a - b)) {
      const add = n - connected;
      if (add <= 0) continue;
      progress(`${progressPrefix}: connecting to ${n} idle clients`);
      const conns = population(sys, rep, 1, add, 0, connected).map((c, i) => ({
        ...c,
        index: connected + i,
        url: sys.urls[(connected + i) % sys.urls.length]!,
        channel: channelIds[(connected + i) % channelIds.length]!,
      }));
      const r = await connect(sys, workers, conns, false);
      workers.forEach((w) => w.send({ type: 'join' }));
      const joined = await Promise.all(workers.map((w) => w.next('joined', 180_000)));
      connected = n;
      await sleep(2000);
      const perConn = (rssOf() - base) / n;
      const failed = r.failed + joined.reduce((s, j) => s + j.failed, 0);
      into.idle.push({ connections: n, rssPerConnBytes: perConn, handshakesPerS: r.handshakesPerS, failed } satisfies IdleResult);
      log(`${progressPrefix}: ${n} idle joined connections: ${(perConn / 1024).toFixed(1)} KB each; ${r.handshakesPerS.toFixed(0)} handshakes/s over ${add}${failed ? `; ${failed} failed (${r.firstError})` : ''}`);
    }
  } catch (err) {
    log(`${progressPrefix}: ERROR ${(err as Error).message}`);
  } finally {
    await Promise.all(workers.map((w) => w.close()));
    await sys.stop();
  }
}

// ---------------------------------------------------------------- main
/** Stops every system still running, then kills whatever process is left (load generators included). */
async function cleanupAll(): Promise<void> {
  await benchCleanups.run();
  killAll();
}

stopOnSignals((signal) => process.stderr.write(`\nbench: ${signal}, stopping everything it started…\n`), cleanupAll);

async function main(): Promise<number> {
  if (cfg.systems.includes('switchboard') && !existsSync(join(ROOT, 'dist/cli.js'))) {
    throw new Error('dist/cli.js is missing: run npm run build first');
  }
  mkdirSync(outDir, { recursive: true });
  const started = Date.now();
  const meta = {
    mode,
    date: new Date().toISOString(),
    workload: 'chat-fanout',
    channels: cfg.channels,
    members: cfg.members,
    senders: cfg.senders,
    payload: cfg.payload,
    connections: cfg.channels * cfg.members,
    instances: cfg.instances,
    reps: cfg.reps,
    store: cfg.store,
    adapter: cfg.adapter ?? 'sharded (default)',
    warmupMs: cfg.warmupMs,
    measureMs: cfg.measureMs,
    stepFactor: cfg.factor,
    extraEnv: cfg.extraEnv,
    dist: cfg.dist ?? 'dist',
    batch: cfg.batch,
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadAvgAtStart: loadavg() },
  };
  log(`bench ${mode}: ${cfg.channels} channels × ${cfg.members} members, ${cfg.senders} senders each, ${cfg.payload}-char messages, store ${cfg.store}, systems ${cfg.systems.join(', ')}, ${cfg.reps} rep(s); load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const reps: RepResult[] = [];
  for (let rep = 1; rep <= cfg.reps; rep++) {
    // Alternate the order so no system always runs first (or last) in a rep.
    const order = cfg.systems.map((_, i) => cfg.systems[(i + rep - 1) % cfg.systems.length]!);
    for (const name of order) {
      const r = await loadRun(name, rep);
      await idleRun(name, rep, r);
      reps.push(r);
    }
  }
  const summaries: Summary[] = cfg.systems.map((s) => summarize(s, reps));
  const sb = summaries.find((s) => s.system === 'switchboard');
  const ref = summaries.find((s) => s.system === 'reference');
  const ratioMax = sb && ref ? sb.maxDeliveredPerS / ref.maxDeliveredPerS : NaN;
  const ratioCpu = sb && ref && sb.cpuUsPerDeliveryAt200 && ref.cpuUsPerDeliveryAt200 ? ref.cpuUsPerDeliveryAt200 / sb.cpuUsPerDeliveryAt200 : NaN;
  // n/a: not measured in this run (e.g. --smoke never reaches the 200 sent/s step).
  const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
  const headline = `ratio max-delivered ${fmt(ratioMax)} cpu-per-delivery ${fmt(ratioCpu)}`;
  const tableText = table(summaries);
  const results = { meta: { ...meta, durationS: (Date.now() - started) / 1000, loadAvgAtEnd: loadavg() }, headline: { ratioMaxDelivered: ratioMax, ratioCpuPerDelivery: ratioCpu }, summaries, reps };
  writeFileSync(join(outDir, 'results.json'), JSON.stringify(results, null, 2));
  writeFileSync(join(outDir, 'report.html'), html({ title: `Switchboard bench (${mode}) ${meta.date}`, meta: results.meta, summaries, tableText, headline }));
  const c = charts(summaries);
  writeFileSync(join(outDir, 'latency.svg'), c.latency);
  writeFileSync(join(outDir, 'cpu.svg'), c.cpu);
  writeFileSync(join(outDir, 'cpu-per-delivery.svg'), c.cpuPerDelivery);
  log(`results: ${outDir}/report.html, results.json (${((Date.now() - started) / 1000).toFixed(0)} s, load average now ${loadavg().map((x) => x.toFixed(2)).join(' ')})`);

  let exitCode = 0;
  const errors = reps.filter((r) => r.error);
  if (mode === 'smoke') {
    // The machinery, not the performance: every system started, connected, and delivered something.
    for (const r of reps) {
      const s = r.steps[0];
      if (r.error) log(`smoke: ${r.system} failed: ${r.error}`);
      else if (!s || s.delivered === 0) log(`smoke: ${r.system} delivered nothing`);
      else if (!Number.isFinite(s.cpuUsPerDelivery) || s.p50 === undefined) log(`smoke: ${r.system} produced no CPU or latency figures`);
      else continue;
      exitCode = 1;
    }
  } else if (errors.length) exitCode = 1;
  process.stdout.write(`${tableText}\n`);
  process.stdout.write(`${headline}\n`);
  return exitCode;
}

main()
  .then(async (code) => {
    await cleanupAll();
    process.exit(code);
  })
  .catch(async (err) => {
    log(`bench failed: ${(err as Error).stack ?? String(err)}`);
    await cleanupAll();
    process.exit(1);
  });
