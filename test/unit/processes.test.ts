/**
 * The guarantees of the test-support module that the tests, the bench and `npm run cluster` rely on:
 * nothing they start outlives them, a process that dies while being waited for says why at once,
 * and clean-up steps run in reverse, each once, whatever fails.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ROOT, startServerProcess } from '../helpers/instance.js';
import { freePort, waitFor } from '../helpers/ports.js';
import { Cleanups, startProcess } from '../helpers/processes.js';

const PROCESSES = join(ROOT, 'test/helpers/processes.ts');

/** True once `pid` has ended (gone, or a zombie nobody has reaped yet). */
function ended(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

/** Waits until every pid has ended; kills those that have not (a failing check must not leave them behind). */
async function expectEnded(pids: number[], what: string): Promise<void> {
  try {
    await waitFor(() => pids.every(ended), what);
  } finally {
    for (const pid of pids.filter((p) => !ended(p))) process.kill(pid, 'SIGKILL');
  }
}

/**
 * Runs an ES module in a fresh node (with tsx) that starts `sh -c <shell>` through startProcess,
 * prints the pids it sees, then dies of an uncaught error. Resolves with those pids.
 */
function crashAfterStarting(shell: string, detached: boolean): Promise<{ pids: number[]; stderr: string }> {
  const script = `
    import { startProcess } from ${JSON.stringify(PROCESSES)};
    const p = startProcess('sh', ['-c', ${JSON.stringify(shell)}], { name: 'sh', detached: ${detached} });
    const grandchild = await p.waitUntil(() => p.output().trim(), 'the grandchild pid');
    process.stdout.write(JSON.stringify([p.pid, Number(grandchild)]));
    throw new Error('the test failed');
  `;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT }, (err, stdout, stderr) => {
      if (!err) return reject(new Error('the script was meant to die of its error'));
      resolve({ pids: JSON.parse(stdout) as number[], stderr });
    });
  });
}

describe('processes started through the helpers', () => {
  test('a tracked process is killed when the process that started it dies of an uncaught error', async () => {
    // sh prints its own pid, then becomes the sleep.
    const { pids, stderr } = await crashAfterStarting('echo $$; exec sleep 600', false);
    expect(stderr).toContain('the test failed');
    await expectEnded(pids, `pid ${pids[0]} to end`);
  });

  test('a tracked process group (a wrapper such as npm and the server under it) is killed whole', async () => {
    const { pids } = await crashAfterStarting('sleep 600 & echo $!; wait', true);
    const [wrapper, server] = pids as [number, number];
    expect(server).not.toBe(wrapper);
    await expectEnded(pids, `the wrapper ${wrapper} and its child ${server} to end`);
  });

  test('waitUntil fails as soon as the process exits, naming it and quoting the end of its output', async () => {
    const p = startProcess('sh', ['-c', 'echo "no config here" >&2; exit 3'], { name: 'the broken one' });
    const err = await p.waitUntil(() => false, 'it to be ready', 20_000).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^the broken one exited \(3\) before it to be ready:\n/);
    expect((err as Error).message).toContain('no config here');
  });

  test('stop() with a grace period ends a process that ignores the signal with SIGKILL', async () => {
    const p = startProcess('sh', ['-c', "trap '' TERM; echo trapped; while :; do sleep 1; done"], { name: 'stubborn' });
    await p.waitUntil(() => p.output().includes('trapped'), 'the trap to be set');
    expect(await p.stop('SIGTERM', 300)).toBe('SIGKILL');
    expect(p.alive).toBe(false);
  });

  test('a server that exits at start-up fails startServerProcess with its exit code and its own error message', async () => {
    const port = await freePort();
    const err = await startServerProcess({ id: 'bad', port, env: { PATH: process.env['PATH']!, JWT_SECRET: 'too short', DATABASE_URL: 'sqlite::memory:' } }).catch(
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^instance bad exited \(2\) before instance bad to be ready:/);
    expect((err as Error).message).toContain('JWT_SECRET: must be at least 32 bytes');
  });
});

describe('Cleanups', () => {
  test('runs the last added step first, each once, past a failing one; an unregistered step never runs', async () => {
    const cleanups = new Cleanups();
    const ran: string[] = [];
    cleanups.add(() => ran.push('redis'));
    const off = cleanups.add(() => ran.push('stopped by its owner'));
    cleanups.add(() => {
      ran.push('database');
      throw new Error('drop failed');
    });
    cleanups.add(async () => {
      ran.push('instances');
    });
    off();
    await cleanups.run();
    await cleanups.run();
    expect(ran).toEqual(['instances', 'database', 'redis']);
  });

  test('a second run() while the first is running waits for the same run', async () => {
    const cleanups = new Cleanups();
    let release!: () => void;
    const done: string[] = [];
    cleanups.add(() => done.push('second step'));
    cleanups.add(() => new Promise<void>((r) => (release = r)).then(() => done.push('first step')));
    const first = cleanups.run();
    const second = cleanups.run().then(() => done.push('second run() resolved'));
    await waitFor(() => release, 'the first step to start');
    release();
    await Promise.all([first, second]);
    expect(done).toEqual(['first step', 'second step', 'second run() resolved']);
  });
});
