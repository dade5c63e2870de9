import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, sleep, waitFor } from './ports.js';
import { TEST_SECRET } from './tokens.js';

export const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/cli.js');

export interface Instance {
  id: string;
  port: number;
  url: string;
  proc: ChildProcess;
  /** Everything the process printed (JSON log lines), for assertions and failure reports. */
  output(): string;
  /** Resolves with the exit code (or the signal name) once the process has ended. */
  exited: Promise<number | string>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
  /** SIGKILL, no drain. */
  kill(): Promise<number | string>;
  /** Start a fresh process with the same id, port and env. */
  restart(): Promise<Instance>;
}

export interface InstanceOptions {
  env?: Record<string, string>;
  /** Start through `npm start` (a shell between the signal and the server) instead of node directly. */
  viaNpm?: boolean;
  id?: string;
  port?: number;
  /** Wait for /readyz to answer 200. @default true */
  waitReady?: boolean;
}

const running = new Set<ChildProcess>();

/**
 * SIGKILL for the process and, for `npm start`, the server under it: npm runs in a process group of
 * its own, and killing only npm with SIGKILL would orphan the server.
 */
function killHard(proc: ChildProcess): void {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  try {
    if (proc.spawnargs[0] === 'npm' && proc.pid) process.kill(-proc.pid, 'SIGKILL');
    else proc.kill('SIGKILL');
  } catch {
    proc.kill('SIGKILL');
  }
}

// Whatever happens to the test process, leave no server behind.
process.once('exit', () => {
  for (const p of running) killHard(p);
});

/** Starts `switchboard serve` as a child process on a free port and waits until it is ready. */
export async function startInstance(options: InstanceOptions = {}): Promise<Instance> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  const port = options.port ?? (await freePort());
  const id = options.id ?? `i${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), `sb-${id}-`));
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? '/root',
    PORT: String(port),
    HOST: '127.0.0.1',
    INSTANCE_ID: id,
    JWT_SECRET: TEST_SECRET,
    DATA_DIR: dataDir,
    DATABASE_URL: `sqlite:${dataDir}/switchboard.db`,
    LOG_LEVEL: 'info',
    SHUTDOWN_NOTICE_MS: '1000',
    SHUTDOWN_TIMEOUT_MS: '15000',
    ...options.env,
  };
  const proc = options.viaNpm
    ? spawn('npm', ['start', '--silent'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    : spawn(process.execPath, [CLI, 'serve'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  let out = '';
  const keep = (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<number | string>((res) =>
    proc.once('exit', (code, signal) => {
      running.delete(proc);
      rmSync(dataDir, { recursive: true, force: true });
      res(code ?? signal ?? 'unknown');
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const instance: Instance = {
    id,
    port,
    url,
    proc,
    output: () => out,
    exited,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    async kill() {
      killHard(proc);
      return exited;
    },
    restart: () => startInstance({ ...options, id, port }),
  };
  if (options.waitReady !== false) {
    try {
      await waitFor(async () => {
        if (proc.exitCode !== null) throw new Error(`instance ${id} exited with ${proc.exitCode}:\n${out.slice(-3000)}`);
        const r = await fetch(`${url}/readyz`).catch(() => undefined);
        return r?.status === 200;
      }, `instance ${id} to be ready`, 20_000, 100);
    } catch (err) {
      await instance.kill();
      throw err;
    }
  }
  return instance;
}

export interface Cluster {
  instances: Instance[];
  stop(): Promise<void>;
}

/** N instances sharing `env` (REDIS_URL, DATABASE_URL …). stop() ends every process, also after failures. */
export async function startCluster(n: number, env: Record<string, string>): Promise<Cluster> {
  const instances: Instance[] = [];
  const cluster: Cluster = {
    instances,
    async stop() {
      await Promise.all(instances.map((i) => i.kill()));
    },
  };
  try {
    for (let i = 0; i < n; i++) instances.push(await startInstance({ env }));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  await sleep(50);
  return cluster;
}
