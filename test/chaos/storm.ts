import { createClient, type SwitchboardClient } from 'switchboard-client';
import { sleep } from '../helpers/ports.js';
import { token } from '../helpers/tokens.js';
import type { World } from './world.js';

export interface StormResult {
  clients: number;
  connectedBeforeMs: number;
  back: number;
  /** ms from the kill until each client had re-joined its channel, sorted. */
  backTimes: number[];
  crashed: number;
}

const pct = (sorted: number[], p: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);

/**
 * The reconnect storm: `n` SDK clients spread over the instances, all instances killed and restarted
 * together, and the time until every client is connected and has re-joined its channel.
 */
export async function runStorm(world: World, n: number, log: (l: string) => void, limitMs = 60_000): Promise<StormResult> {
  const urls = world.urls();
  const clients: SwitchboardClient[] = [];
  const joins = new Array<number>(n).fill(0);
  const backAt = new Array<number | undefined>(n).fill(undefined);
  let killedAt = Infinity;
  const started = Date.now();
  try {
    for (let i = 0; i < n; i++) {
      const id = `storm${i}`;
      const c = createClient({
        url: urls.map((_, k) => urls[(i + k) % urls.length]!),
        getToken: () => token(id),
        onError: () => undefined,
      });
      c.subscribe(world.channels[i % world.channels.length]!, {
        onJoin: () => {
          joins[i]!++;
          if (Date.now() >= killedAt && backAt[i] === undefined) backAt[i] = Date.now() - killedAt;
        },
      });
      clients.push(c);
      if (i % 100 === 99) await sleep(50);
    }
    const deadline = Date.now() + 120_000;
    while (joins.some((j) => j === 0)) {
      if (Date.now() > deadline) throw new Error(`only ${joins.filter((j) => j > 0).length}/${n} clients joined within 120 s`);
      await sleep(200);
    }
    const connectedBeforeMs = Date.now() - started;
    log(`storm: ${n} clients connected and joined in ${connectedBeforeMs} ms; killing all ${world.slots.length} instances`);

    for (const s of world.slots) s.expecting = 'kill';
    killedAt = Date.now();
    await Promise.all(world.slots.map((s) => s.instance?.kill()));
    await Promise.all(world.slots.map((s) => world.restart(s)));
    log(`storm: all instances back up after ${Date.now() - killedAt} ms; waiting for the clients`);
    const until = killedAt + limitMs + 30_000;
    let lastReport = Date.now();
    while (backAt.some((t) => t === undefined) && Date.now() < until) {
      await sleep(200);
      if (Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        log(`storm: ${backAt.filter((t) => t !== undefined).length}/${n} back after ${Date.now() - killedAt} ms`);
      }
    }
    const backTimes = backAt.filter((t): t is number => t !== undefined).sort((a, b) => a - b);
    log(`storm: ${backTimes.length}/${n} back; p50 ${pct(backTimes, 50)} ms, p95 ${pct(backTimes, 95)} ms, p99 ${pct(backTimes, 99)} ms, max ${backTimes.at(-1) ?? '-'} ms`);
    return { clients: n, connectedBeforeMs, back: backTimes.length, backTimes, crashed: world.crashes.length };
  } finally {
    for (const c of clients) c.close();
  }
}

export { pct };
