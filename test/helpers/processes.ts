import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { waitFor } from './ports.js';

/** How much of a process's output a Proc keeps (the newest characters). */
const OUTPUT_KEPT = 1_000_000;
const EXITED = Symbol('exited');

/** Every tracked process that has not ended yet. */
const running = new Set<Proc>();

/** SIGKILL for every tracked process still running (and its process group, where it leads one). */
export function killAll(): void {
  for (const p of running) p.killNow();
}

// Whatever happens to this process (a failed test, an exception, process.exit), leave no child behind.
process.once('exit', killAll);

export interface TrackOptions {
  /** Shown in errors and reports. */
  name: string;
  /**
   * The child leads a process group of its own (spawned `detached`): SIGKILL then goes to the whole
   * group, so that a wrapper such as `npm start` does not leave its server orphaned.
   * @default false
   */
  group?: boolean;
  /** Called with every chunk the process prints (stdout and stderr), e.g. to write a log file. */
  onOutput?: (chunk: Buffer) => void;
}

/**
 * A child process that is tracked until it ends: its output is kept, and it is killed when this
 * process exits, however that happens.
 */
export class Proc {
  readonly name: string;
  /** Resolves with the exit code, or the signal's name, once the process has ended. */
  readonly exited: Promise<number | string>;
  private out = '';
  private ended = false;

  constructor(
    readonly child: ChildProcess,
    private readonly options: TrackOptions,
  ) {
    this.name = options.name;
    const keep = (chunk: Buffer) => {
      options.onOutput?.(chunk);
      this.out += chunk.toString();
      if (this.out.length > 2 * OUTPUT_KEPT) this.out = this.out.slice(-OUTPUT_KEPT);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      const settle = (exit: number | string) => {
        this.ended = true;
        running.delete(this);
        resolve(exit);
      };
      if (child.exitCode !== null || child.signalCode !== null) return settle(child.exitCode ?? child.signalCode!);
      child.once('exit', (code, signal) => settle(code ?? signal ?? 'unknown'));
      // A binary that cannot be started emits 'error' and never 'exit'.
      child.once('error', (err) => child.pid === undefined && settle(`not started: ${err.message}`));
    });
    if (!this.ended) running.add(this);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return !this.ended && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Everything the process printed so far (stdout and stderr interleaved, the newest 1 MB at least). */
  output(): string {
    return this.out;
  }

  /**
   * Sends `signal` and resolves with the exit once the process has ended; with `graceMs`, SIGKILL
   * follows if it is still running by then (without, it may take as long as the process likes).
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs?: number): Promise<number | string> {
    if (!this.alive) return this.exited;
    this.child.kill(signal);
    const timer = graceMs === undefined ? undefined : setTimeout(() => this.killNow(), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  /** SIGKILL (to the group, where it leads one), no drain; resolves with the exit. */
  kill(): Promise<number | string> {
    this.killNow();
    return this.exited;
  }

  /** SIGKILL without waiting (the exit hook cannot wait). */
  killNow(): void {
    if (!this.alive) return;
    try {
      if (this.options.group && this.child.pid) process.kill(-this.child.pid, 'SIGKILL');
      else this.child.kill('SIGKILL');
    } catch {
      this.child.kill('SIGKILL');
    }
  }

  /**
   * Polls `check` as waitFor() does, but fails at once, with the end of the output, when the
   * process ends before `check` holds.
   */
  async waitUntil<T>(check: () => T | Promise<T>, what: string, timeoutMs = 10_000, everyMs = 50): Promise<NonNullable<T>> {
    const v = await waitFor<T | typeof EXITED>(() => (this.alive ? check() : EXITED), what, timeoutMs, everyMs);
    if (v !== EXITED) return v as NonNullable<T>;
    const exit = await this.exited;
    throw new Error(`${this.name} exited (${exit}) before ${what}:\n${this.out.slice(-3000)}`);
  }
}

/** Starts a tracked child; stdout and stderr are piped (and kept) unless `stdio` says otherwise. */
export function startProcess(command: string, args: string[], options: SpawnOptions & Omit<TrackOptions, 'group'>): Proc {
  const { name, onOutput, ...spawnOptions } = options;
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOptions });
  return new Proc(child, { name, group: spawnOptions.detached === true, ...(onOutput ? { onOutput } : {}) });
}

/** Tracks a child started some other way (e.g. `fork`). */
export const track = (child: ChildProcess, options: TrackOptions): Proc => new Proc(child, options);

/**
 * Clean-up steps, run last added first. Each step runs once; one that fails does not keep the
 * others from running. A helper that starts several things registers each as it comes up, so a
 * failure half-way stops exactly what was started.
 */
export class Cleanups {
  private steps: (() => unknown)[] = [];
  private running: Promise<void> | undefined;

  /** Registers a step; the function returned unregisters it (when its owner cleaned up itself). */
  add(step: () => unknown): () => void {
    this.steps.push(step);
    return () => {
      this.steps = this.steps.filter((s) => s !== step);
    };
  }

  /** Runs every registered step; a second call while they run waits for the same run. */
  run(): Promise<void> {
    this.running ??= (async () => {
      for (let step = this.steps.pop(); step; step = this.steps.pop()) {
        await (async () => step())().catch(() => undefined);
      }
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }
}

/**
 * For a command line that starts processes (the bench, the chaos run): on SIGINT, SIGTERM or SIGHUP
 * it says so, runs `cleanup`, and exits with 130.
 */
export function stopOnSignals(say: (signal: NodeJS.Signals) => void, cleanup: () => Promise<unknown>): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      say(signal);
      void cleanup().finally(() => process.exit(130));
    });
  }
}

/** Resident set size of a process in bytes (Linux /proc); throws when there is no such process. */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
  if (!kb) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb) * 1024;
}
