import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../../src/adapters/store/sqlite.js';
import { startProcess } from '../helpers/processes.js';

const WRITER = join(import.meta.dirname, 'sqlite-writer.ts');
const CHANNEL = 'shared';

interface Appended {
  seq: number;
  id: string;
  duplicate: boolean;
}

/** A store process (sqlite-writer.ts): `send` a command, then read its answer line by line. */
function startWriter() {
  const tracked = startProcess(process.execPath, ['--import', 'tsx', '--conditions=switchboard:source', WRITER], { name: 'sqlite-writer', stdio: ['pipe', 'pipe', 'pipe'] });
  const proc = tracked.child as ChildProcessWithoutNullStreams;
  const lines: string[] = [];
  let wake = () => {};
  createInterface({ input: proc.stdout }).on('line', (line) => {
    lines.push(line);
    wake();
  });
  void tracked.exited.then(() => wake());
  const next = async (): Promise<string> => {
    while (lines.length === 0) {
      if (!tracked.alive) throw new Error(`the writer exited with ${await tracked.exited}: ${tracked.output()}`);
      await new Promise<void>((r) => (wake = r));
    }
    return lines.shift()!;
  };
  /** Answer lines up to `last`, which is left out. */
  const until = async (last: string) => {
    const out: string[] = [];
    for (let line = await next(); line !== last; line = await next()) out.push(line);
    return out;
  };
  return {
    send: (command: string) => proc.stdin.write(`${command}\n`),
    until,
    async stop() {
      // End of input is the writer's cue to close its store and exit; kill it if it has not in 5 s.
      proc.stdin.end();
      await Promise.race([tracked.exited, new Promise((r) => setTimeout(r, 5000).unref())]);
      await tracked.kill();
    },
  };
}

type Writer = ReturnType<typeof startWriter>;

describe('MessageStore on SQLite: two processes on one file', () => {
  let dir: string;
  let writers: Writer[];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-sqlite-'));
    writers = [startWriter(), startWriter()];
  });
  afterAll(async () => {
    await Promise.all(writers.map((w) => w.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** Both writers run their command at once; resolves with each one's answer up to `last`. */
  const both = (command: (writer: number) => string, last: string) => {
    writers.forEach((w, i) => w.send(command(i)));
    return Promise.all(writers.map((w) => w.until(last)));
  };

  it('both start on a fresh file at once: each migrates it, or finds it migrated', async () => {
    // Each round is one race between the two migrations.
    for (let round = 0; round < 5; round++) {
      const file = join(dir, `fresh-${round}.db`);
      expect(await both(() => `open ${file} ${CHANNEL}`, 'opened')).toEqual([[], []]);
      const store = openSqliteStore(file, pino({ level: 'silent' }));
      expect((await store.getChannel(CHANNEL))?.lastSeq).toBe(0);
      await store.close();
    }
  });

  it('both appending to one channel at once get gapless seqs, and a retry sent by both is stored once', async () => {
    const file = join(dir, 'shared.db');
    const [batches, size] = [150, 4];
    await both(() => `open ${file} ${CHANNEL}`, 'opened');
    const answers = await both((i) => `append ${CHANNEL} writer-${i} ${batches} ${size}`, 'appended');
    const [a, b] = answers.map((lines) => lines.map((l) => JSON.parse(l) as Appended[]));
    expect(a).toHaveLength(batches);
    expect(b).toHaveLength(batches);

    const total = 2 * batches * size + batches;
    const fresh = [...a!, ...b!].flat().filter((m) => !m.duplicate);
    expect(fresh.map((m) => m.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(new Set(fresh.map((m) => m.id)).size).toBe(total);
    // One transaction per batch: the messages it stored have consecutive seqs.
    for (const batch of [...a!, ...b!]) {
      const seqs = batch.filter((m) => !m.duplicate).map((m) => m.seq);
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    }
    // The retry both sent in batch i was stored by one of them; the other got that original.
    for (let i = 0; i < batches; i++) {
      const [x, y] = [a![i]!.at(-1)!, b![i]!.at(-1)!];
      expect([x.duplicate, y.duplicate].sort()).toEqual([false, true]);
      expect(x.id).toBe(y.id);
    }

    const store = openSqliteStore(file, pino({ level: 'silent' }));
    try {
      expect((await store.getChannel(CHANNEL))?.lastSeq).toBe(total);
      const stored: number[] = [];
      for (let more = true; more; ) {
        const page = await store.history(CHANNEL, { afterSeq: stored.at(-1) ?? 0, limit: 200 });
        stored.push(...page.messages.map((m) => m.seq));
        more = page.hasMore;
      }
      expect(stored).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    } finally {
      await store.close();
    }
  });
});
