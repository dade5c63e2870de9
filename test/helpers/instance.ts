import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, httpStatus, sleep } from './ports.js';
import { startProcess, type Proc } from './processes.js';
import { TEST_SECRET } from './tokens.js';

export const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/cli.js');

export interface ServerProcessOptions {
  /** INSTANCE_ID. */
  id: string;
  /** PORT, on 127.0.0.1. */
  port: number;
  /** The whole environment of the process besides PORT, HOST and INSTANCE_ID: nothing is inherited. */
  env: Record<string, string>;
  /** @default `instance <id>` */
  name?: string;
  /** The built CLI to run (another build, for A/B runs). @default dist/cli.js of this checkout */
  cli?: string;
  /** Flags for node before the script (e.g. --cpu-prof). @default none */
  nodeFlags?: string[];
  /** @default the repository root */
  cwd?: string;
  /** Start through `npm start` (a shell between the signal and the server) instead of node directly. @default false */
  viaNpm?: boolean;
  /**
   * A process group of its own, so that a terminal's Ctrl-C reaches only the parent (which stops
   * things in order). `viaNpm` implies it: killing npm alone would orphan the server.
   * @default false
   */
  detached?: boolean;
  /** Every chunk of output, as it comes (e.g. for a log file). */
  onOutput?: (chunk: Buffer) => void;
  /** Wait for /readyz to answer 200 this long; 0: do not wait. @default 20000 */
  readyTimeoutMs?: number;
}

/**
 * Starts `switchboard serve` (the built CLI) as a tracked child process and waits until it is ready.
 * A process that exits or is not ready in time is killed and the error carries its last output.
 * Shared by the tests, the bench and `npm run cluster`.
 */
export async function startServerProcess(o: ServerProcessOptions): Promise<Proc> {
  const cli = o.cli ?? CLI;
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first (npm test does)`);
  const env = { ...o.env, PORT: String(o.port), HOST: '127.0.0.1', INSTANCE_ID: o.id };
  const common = { cwd: o.cwd ?? ROOT, env, name: o.name ?? `instance ${o.id}`, ...(o.onOutput ? { onOutput: o.onOutput } : {}) };
  const proc = o.viaNpm
    ? startProcess('npm', ['start', '--silent'], { ...common, detached: true })
    : startProcess(process.execPath, [...(o.nodeFlags ?? []), cli, 'serve'], { ...common, detached: o.detached ?? false });
  const readyTimeoutMs = o.readyTimeoutMs ?? 20_000;
  if (readyTimeoutMs > 0) {
    try {
      const ready = async () => (await httpStatus(`http://127.0.0.1:${o.port}/readyz`)) === 200;
      await proc.waitUntil(ready, `${proc.name} to be ready`, readyTimeoutMs, 100);
    } catch (err) {
      await proc.kill();
      throw err;
    }
  }
  return proc;
}

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

/**
 * Starts `switchboard serve` as a child process on a free port, with the test secret and its own
 * SQLite file unless `env` says otherwise, and waits until it is ready. Killed when the test
 * process exits, whatever happened.
 */
export async function startInstance(options: InstanceOptions = {}): Promise<Instance> {
  const port = options.port ?? (await freePort());
  const id = options.id ?? `i${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), `sb-${id}-`));
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? '/root',
    JWT_SECRET: TEST_SECRET,
    DATA_DIR: dataDir,
    DATABASE_URL: `sqlite:${dataDir}/switchboard.db`,
    LOG_LEVEL: 'info',
    SHUTDOWN_NOTICE_MS: '1000',
    SHUTDOWN_TIMEOUT_MS: '15000',
    ...options.env,
  };
  let proc: Proc;
  try {
    proc = await startServerProcess({ id, port, env, viaNpm: options.viaNpm ?? false, readyTimeoutMs: options.waitReady === false ? 0 : 20_000 });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const exited = proc.exited.then((exit) => {
    rmSync(dataDir, { recursive: true, force: true });
    return exit;
  });
  return {
    id,
    port,
    url: `http://127.0.0.1:${port}`,
    proc: proc.child,
    output: () => proc.output(),
    exited,
    async stop(signal = 'SIGTERM') {
      await proc.stop(signal);
      return exited;
    },
    async kill() {
      await proc.kill();
      return exited;
    },
    restart: () => startInstance({ ...options, id, port }),
  };
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
