/**
 * `npm run cluster`: a local Switchboard cluster from the machine's own binaries, the same topology
 * as deploy/compose: a private redis-server, N instances (`node dist/cli.js serve`) sharing one store,
 * and nginx (or HAProxy) in front with the project's config from deploy/. Ctrl-C or SIGTERM drains the
 * instances and stops everything.
 *
 * Store: DATABASE_URL if set (every instance uses it); else the local PostgreSQL, when it answers at
 * CLUSTER_PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres), with a database
 * `switchboard_cluster` created on first use; else, or with --sqlite, one SQLite file per instance,
 * with a warning: each instance then has its own history and its own sequence numbers.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadOrCreateDevSecret } from '../src/dev-secret.js';
import { startServerProcess } from '../test/helpers/instance.js';
import { freePort, portFree } from '../test/helpers/ports.js';
import { databaseUrl, redactUrl, withAdmin } from '../test/helpers/postgres.js';
import { killAll, type Proc } from '../test/helpers/processes.js';
import { startRedis } from '../test/helpers/redis.js';
import { REPO_ROOT, runHaproxy, runNginx, type NginxSticky, type RunningBalancer } from './lib/balancers.js';
import { findBinary, MissingBinaryError } from './lib/binaries.js';

const HELP = `npm run cluster -- [options]

Starts a private redis-server, several Switchboard instances and nginx in front (deploy/nginx/nginx.conf).

Options:
  --port <n>          balancer port (env CLUSTER_PORT; default 8080)
  --base-port <n>     first instance port; the others follow (env CLUSTER_BASE_PORT; default 3001)
  --redis-port <n>    private redis-server port (default: a free port)
  --instances <n>     number of instances (default 3)
  --balancer <name>   nginx (default) or haproxy (deploy/haproxy/haproxy.cfg)
  --sticky <mode>     nginx affinity: ip_hash (as shipped; every client of this machine gets one
                      instance), cookie (the file's NAT-proof alternative: one instance per browser)
  --sqlite            one SQLite file per instance even when PostgreSQL is available
  -h, --help          this help

Store: DATABASE_URL if set; else the local PostgreSQL (CLUSTER_PG_ADMIN_URL, database
switchboard_cluster); else SQLite per instance (separate histories: a warning says so).
Logs, the shared development JWT secret and SQLite files: data/cluster (CLUSTER_DATA_DIR).`;

// Logs, the shared development JWT secret and SQLite files (CLUSTER_DATA_DIR to put them elsewhere).
const DATA = resolve(process.env['CLUSTER_DATA_DIR'] ?? join(REPO_ROOT, 'data/cluster'));
const CLI = join(REPO_ROOT, 'dist/cli.js');
const PG_ADMIN_URL = process.env['CLUSTER_PG_ADMIN_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const CLUSTER_DB = 'switchboard_cluster';

const color = process.stdout.isTTY ? (code: number, s: string) => `\x1b[${code}m${s}\x1b[0m` : (_: number, s: string) => s;
const step = (s: string) => process.stdout.write(`  … ${s}\n`);
const ok = (s: string) => process.stdout.write(`  ${color(32, '✓')} ${s}\n`);
const warn = (s: string) => process.stdout.write(`  ${color(33, '!')} ${s}\n`);

class UsageError extends Error {}

function options() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      'base-port': { type: 'string' },
      'redis-port': { type: 'string' },
      instances: { type: 'string' },
      balancer: { type: 'string' },
      sticky: { type: 'string' },
      sqlite: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  const port = (name: string, v: string | undefined, dflt: number | undefined) => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`${name} must be a port number (1-65535), got ${JSON.stringify(v)}`);
    return n;
  };
  const instances = Number(values.instances ?? 3);
  if (!Number.isInteger(instances) || instances < 1 || instances > 20) throw new UsageError('--instances must be between 1 and 20');
  const balancer = values.balancer ?? 'nginx';
  if (balancer !== 'nginx' && balancer !== 'haproxy') throw new UsageError('--balancer must be nginx or haproxy');
  const sticky = values.sticky ?? 'ip_hash';
  if (sticky !== 'ip_hash' && sticky !== 'cookie') throw new UsageError('--sticky must be ip_hash or cookie');
  if (values.sticky && balancer === 'haproxy') throw new UsageError('--sticky applies to nginx; HAProxy always uses its SERVERID cookie');
  return {
    port: port('--port', values.port ?? process.env['CLUSTER_PORT'], 8080)!,
    basePort: port('--base-port', values['base-port'] ?? process.env['CLUSTER_BASE_PORT'], 3001)!,
    redisPort: port('--redis-port', values['redis-port'], undefined),
    instances,
    balancer: balancer as 'nginx' | 'haproxy',
    sticky: sticky as NginxSticky,
    sqlite: Boolean(values.sqlite),
  };
}

/** Every part this script started, stopped in order on the way out (the test helpers kill any left at exit). */
const children: { name: string; child: ChildProcess; stop: () => Promise<unknown> }[] = [];

async function startClusterRedis(port: number | undefined): Promise<string> {
  const p = port ?? (await freePort());
  if (!(await portFree(p))) throw new UsageError(`port ${p} (redis) is in use; pass --redis-port with a free one`);
  step(`redis-server starting on 127.0.0.1:${p}`);
  const redis = await startRedis({ port: p, detached: true, stopGraceMs: 3000 });
  children.push({ name: 'redis-server', child: redis.proc, stop: () => redis.stop() });
  ok(`redis-server ready at ${redis.url} (pid ${redis.proc.pid}, private, no persistence)`);
  return redis.url;
}

/** One shared store for every instance when possible; undefined = SQLite per instance. */
async function chooseStore(sqlite: boolean): Promise<string | undefined> {
  const fromEnv = process.env['DATABASE_URL'];
  if (fromEnv) {
    if (fromEnv.startsWith('sqlite:')) {
      warn('DATABASE_URL is SQLite: every instance opens the same file; SQLite serialises their writes (fine for a demo, not for load)');
    }
    ok(`store: ${redactUrl(fromEnv)} (DATABASE_URL, shared by every instance)`);
    return fromEnv;
  }
  if (!sqlite) {
    step(`looking for PostgreSQL at ${redactUrl(PG_ADMIN_URL)}`);
    try {
      const created = await withAdmin(
        async (admin) => {
          const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [CLUSTER_DB]);
          if (!rowCount) await admin.query(`CREATE DATABASE "${CLUSTER_DB}"`);
          return !rowCount;
        },
        { url: PG_ADMIN_URL, variable: 'CLUSTER_PG_ADMIN_URL', connectTimeoutMs: 2000 },
      );
      ok(`store: PostgreSQL database ${CLUSTER_DB}${created ? ' (created)' : ''}, shared by every instance`);
      return databaseUrl(CLUSTER_DB, PG_ADMIN_URL);
    } catch (err) {
      warn(`${(err as Error).message}; falling back to SQLite`);
    }
  }
  warn('store: one SQLite file per instance. Live messages reach everyone through Redis, but each');
  warn('instance keeps its own history and sequence numbers: history differs by instance. Set');
  warn('DATABASE_URL=postgres://... (or start PostgreSQL) for one shared history.');
  return undefined;
}

/** A path as the reader would type it: relative when under the working directory. */
const shown = (p: string) => {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') ? r : p;
};

interface Started {
  id: string;
  url: string;
  proc: Proc;
  log: string;
}

/** This script's environment, passed on to the instances (their own variables are set over it). */
const inherited = (): Record<string, string> =>
  Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));

async function startInstance(id: string, port: number, env: Record<string, string>): Promise<Started> {
  if (!(await portFree(port))) throw new UsageError(`port ${port} (instance ${id}) was taken meanwhile; pass --base-port <n> with a free range`);
  const logDir = join(DATA, 'logs');
  mkdirSync(logDir, { recursive: true });
  const logPath = join(logDir, `${id}.log`);
  const log = createWriteStream(logPath, { flags: 'a' });
  step(`instance ${id} starting on 127.0.0.1:${port} (log: ${shown(logPath)})`);
  let proc: Proc;
  try {
    proc = await startServerProcess({
      id,
      port,
      env: { ...inherited(), ...env },
      // Own process group: Ctrl-C in the terminal reaches only this script, which stops the parts in order.
      detached: true,
      onOutput: (chunk) => log.write(chunk),
      readyTimeoutMs: 30_000,
    });
  } catch (err) {
    log.end();
    throw new Error(`${(err as Error).message}\n(log: ${shown(logPath)})`);
  }
  void proc.exited.then(() => log.end());
  // Instances drain on SIGTERM (SHUTDOWN_TIMEOUT_MS, 30 s by default), then exit.
  children.push({ name: `instance ${id}`, child: proc.child, stop: () => proc.stop('SIGTERM', 35_000) });
  const url = `http://127.0.0.1:${port}`;
  ok(`instance ${id} ready at ${url} (pid ${proc.pid})`);
  return { id, url, proc, log: logPath };
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

let stopping = false;
let stoppingSince = 0;
/** Wrappers relay the terminal's Ctrl-C (tsx re-sends it when the child's notice is slow): one press. */
const DUPLICATE_SIGNAL_MS = 2000;
async function stopAll(reason: string, code: number): Promise<never> {
  if (stopping) {
    if (Date.now() - stoppingSince < DUPLICATE_SIGNAL_MS) return new Promise<never>(() => undefined);
    process.stdout.write(`\nStopping at once (${reason} again): killing every part.\n`);
    killAll();
    process.exit(1);
  }
  stoppingSince = Date.now();
  stopping = true;
  process.stdout.write(`\n${reason}: stopping the cluster (instances drain first; press Ctrl-C again to kill at once)\n`);
  // Balancer first (no new traffic), then the instances together (each drains), Redis last.
  const order = [...children].reverse();
  const balancer = order.filter((c) => c.name === 'nginx' || c.name === 'haproxy');
  const instances = order.filter((c) => c.name.startsWith('instance '));
  const rest = order.filter((c) => !balancer.includes(c) && !instances.includes(c));
  for (const group of [balancer, instances, rest]) {
    await Promise.all(
      group.map(async (c) => {
        const running = c.child.exitCode === null && c.child.signalCode === null;
        await c.stop();
        if (running) ok(`${c.name} stopped${c.child.exitCode !== null ? ` (exit ${c.child.exitCode})` : ''}`);
      }),
    );
  }
  process.exit(code);
}

/** Fails before anything is started when the build, a binary or a port is missing. */
async function preflight(o: ReturnType<typeof options>): Promise<void> {
  if (!existsSync(CLI)) throw new UsageError(`${relative(process.cwd(), CLI)} is missing: run \`npm run build\` first`);
  if (newestMtime(join(REPO_ROOT, 'src')) > statSync(CLI).mtimeMs) warn('src/ changed after the last build: run `npm run build` to run the current code');
  findBinary('redis-server');
  findBinary(o.balancer);
  if (!(await portFree(o.port))) throw new UsageError(`port ${o.port} is in use; pass --port <n> (or set CLUSTER_PORT)`);
  for (let i = 0; i < o.instances; i++) {
    const p = o.basePort + i;
    if (p === o.port || !(await portFree(p))) {
      throw new UsageError(`port ${p} (instance c${i + 1}) is in use; pass --base-port <n> (or set CLUSTER_BASE_PORT) with ${o.instances} free ports from n`);
    }
  }
}

async function main(): Promise<void> {
  const o = options();
  process.on('SIGINT', () => void stopAll('Ctrl-C', 0));
  process.on('SIGTERM', () => void stopAll('SIGTERM', 0));

  process.stdout.write(`Starting a Switchboard cluster: ${o.instances} instances, ${o.balancer} on port ${o.port}\n`);
  await preflight(o);
  const redisUrl = await startClusterRedis(o.redisPort);
  const storeUrl = await chooseStore(o.sqlite);
  // Without an operator's JWT_SECRET the instances run on one generated development secret, kept in
  // DATA and read by each of them (DATA_DIR), so /dev/token and the demo sign-in work on all of them.
  const operatorSecret = process.env['JWT_SECRET'] || undefined;
  if (!operatorSecret) loadOrCreateDevSecret(DATA);

  const instances: Started[] = [];
  for (let i = 0; i < o.instances; i++) {
    const id = `c${i + 1}`;
    const dataDir = join(DATA, id);
    instances.push(
      await startInstance(id, o.basePort + i, {
        REDIS_URL: redisUrl,
        DATABASE_URL: storeUrl ?? `sqlite:${join(dataDir, 'switchboard.db')}`,
        // One key for every instance: a token from any of them is valid on all.
        DATA_DIR: operatorSecret ? dataDir : DATA,
        JWT_SECRET: operatorSecret ?? '',
        // nginx/HAProxy run on this machine: believe X-Forwarded-For from loopback only.
        TRUST_PROXY: process.env['TRUST_PROXY'] ?? 'loopback',
      }),
    );
  }
  for (const inst of instances) {
    void inst.proc.exited.then((exit) => {
      if (!stopping) warn(`instance ${inst.id} exited unexpectedly (${exit}); see ${shown(inst.log)}`);
    });
  }

  const upstreams = instances.map((i) => i.url);
  step(`${o.balancer} starting on 127.0.0.1:${o.port} with deploy/${o.balancer === 'nginx' ? 'nginx/nginx.conf' : 'haproxy/haproxy.cfg'}`);
  const balancer: RunningBalancer =
    o.balancer === 'nginx' ? await runNginx({ upstreams, port: o.port, sticky: o.sticky, detached: true })
      : await runHaproxy({ upstreams, port: o.port, sticky: true, detached: true });
  children.push({ name: o.balancer, child: balancer.proc, stop: () => balancer.stop() });
  balancer.proc.once('exit', (code, signal) => {
    if (!stopping) warn(`${o.balancer} exited unexpectedly (${code ?? signal}):\n${balancer.output().slice(-2000)}`);
  });
  const affinity =
    o.balancer === 'haproxy' ? 'SERVERID cookie' : o.sticky === 'ip_hash' ? 'ip_hash: every client of this machine gets the same instance' : 'affinity cookie';
  ok(`${o.balancer} ready at ${balancer.url} (${affinity})`);

  const url = `http://127.0.0.1:${o.port}`;
  process.stdout.write(`\nSwitchboard cluster ready at ${url}\n`);
  const tokenCmd = process.env['JWT_SECRET']
    ? 'node dist/cli.js token alice'
    : `DATA_DIR=${shown(DATA) || '.'} node dist/cli.js token alice`;
  process.stdout.write(`Token: ${tokenCmd}\n`);
  process.stdout.write(`   or: curl -s -X POST ${url}/dev/token -H 'content-type: application/json' -d '{"userId":"alice"}'\n`);
  process.stdout.write(`Instances: ${instances.map((i) => `${i.id} ${i.url}`).join(', ')}\n`);
  process.stdout.write('Press Ctrl-C to stop (the instances drain first).\n');
}

main().catch((err: unknown) => {
  if (err instanceof MissingBinaryError || err instanceof UsageError) process.stderr.write(`\nnpm run cluster: ${(err as Error).message}\n`);
  else process.stderr.write(`\nnpm run cluster: ${(err as Error).stack ?? String(err)}\n`);
  void stopAll('start-up failed', 1);
});
