import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryPresence } from '../../src/adapters/presence/memory.js';
import { RedisPresence, type RedisPresenceOptions } from '../../src/adapters/presence/redis.js';
import type { PresenceUser } from 'switchboard-client/protocol';
import type { Presence } from '../../src/ports/presence.js';
import { sleep, waitFor } from '../helpers/ports.js';
import { memoryKind, redisKind, silentLogger, uniquePrefix, useBackend, type BackendKind } from './backends.js';

type OpenOptions = Pick<RedisPresenceOptions, 'keyPrefix' | 'ttlMs' | 'heartbeatMs' | 'linkUp'>;

let instances = 0;
const KINDS: BackendKind<Presence, OpenOptions>[] = [
  memoryKind(() => new MemoryPresence()),
  redisKind((redis, options) => new RedisPresence(redis, { instanceId: `instance-${++instances}`, logger: silentLogger, ...options })),
];

const CH = 'room';

const sameUsers = (a: PresenceUser[], b: PresenceUser[]) => JSON.stringify(a) === JSON.stringify(b);

describe.each(KINDS)('Presence contract on $name', (kind) => {
  const backend = useBackend(kind);
  let keyPrefix: string;
  const opened: Presence[] = [];
  beforeEach(() => {
    keyPrefix = uniquePrefix();
  });
  afterEach(async () => {
    for (const p of opened.splice(0)) await p.close();
  });
  /** One more instance's presence, started; the instances of one test share their keys. */
  const open = async (options: Omit<OpenOptions, 'keyPrefix'> = {}, on = backend) => {
    const p = await on().open({ keyPrefix, ...options });
    opened.push(p);
    await p.start();
    return p;
  };

  it("add resolves true for a user's first connection in a channel, remove true for the last", async () => {
    const p = await open();
    expect(await p.add(CH, 'alice')).toBe(true);
    expect(await p.add(CH, 'alice')).toBe(false);
    expect(await p.remove(CH, 'alice')).toBe(false);
    expect(await p.remove(CH, 'alice')).toBe(true);
    expect(await p.add(CH, 'alice')).toBe(true);
  });

  it('counts each channel and each user apart', async () => {
    const p = await open();
    expect(await p.add(CH, 'alice')).toBe(true);
    expect(await p.add('other', 'alice')).toBe(true);
    expect(await p.add(CH, 'bob')).toBe(true);
    expect(await p.remove('other', 'alice')).toBe(true);
    expect(await p.list(CH)).toEqual([
      { userId: 'alice', connections: 1 },
      { userId: 'bob', connections: 1 },
    ]);
    expect(await p.list('other')).toEqual([]);
  });

  it('a remove without an add resolves false and changes nothing', async () => {
    const p = await open();
    expect(await p.remove(CH, 'ghost')).toBe(false);
    expect(await p.list(CH)).toEqual([]);
    expect(await p.add(CH, 'ghost')).toBe(true);
    expect(await p.remove(CH, 'ghost')).toBe(true);
    expect(await p.remove(CH, 'ghost')).toBe(false);
    expect(await p.add(CH, 'ghost')).toBe(true);
  });

  it('list gives each user with connections and their count, sorted by userId', async () => {
    const p = await open();
    for (const user of ['carol', 'alice', 'Zed', 'bob', 'alice', 'carol', 'alice']) await p.add(CH, user);
    await p.remove(CH, 'bob');
    expect(await p.list(CH)).toEqual([
      { userId: 'Zed', connections: 1 },
      { userId: 'alice', connections: 3 },
      { userId: 'carol', connections: 2 },
    ]);
    expect(await p.list('unknown')).toEqual([]);
  });

  if (!kind.shared) return;

  it('instances sharing the backend count together', async () => {
    const [a, b] = [await open(), await open()];
    expect(await a.add(CH, 'alice')).toBe(true);
    expect(await b.add(CH, 'alice')).toBe(false);
    await b.add(CH, 'bob');
    const both = [
      { userId: 'alice', connections: 2 },
      { userId: 'bob', connections: 1 },
    ];
    expect(await a.list(CH)).toEqual(both);
    expect(await b.list(CH)).toEqual(both);
    expect(await a.remove(CH, 'alice')).toBe(false);
    expect(await b.remove(CH, 'alice')).toBe(true);
    expect(await a.list(CH)).toEqual([{ userId: 'bob', connections: 1 }]);
  });

  it("close removes that instance's share from what the others see", async () => {
    const [a, b] = [await open(), await open()];
    await a.add(CH, 'alice');
    await a.add(CH, 'bob');
    await b.add(CH, 'bob');
    await a.close();
    expect(await b.list(CH)).toEqual([{ userId: 'bob', connections: 1 }]);
    expect(await b.add(CH, 'alice')).toBe(true);
  });

  it("an instance that stops heartbeating has its share expire; the others stop counting it", async () => {
    const silent = await open({ ttlMs: 2000, heartbeatMs: 3_600_000 });
    const b = await open();
    expect(await silent.add(CH, 'alice')).toBe(true);
    expect(await b.list(CH)).toEqual([{ userId: 'alice', connections: 1 }]);
    await waitFor(async () => (await b.list(CH)).length === 0, 'the silent instance to expire');
    expect(await b.add(CH, 'alice')).toBe(true);
  });

  it("heartbeats keep a live instance's share beyond the TTL", async () => {
    const live = await open({ ttlMs: 1500, heartbeatMs: 100 });
    const b = await open();
    await live.add(CH, 'alice');
    await sleep(3000);
    expect(await b.list(CH)).toEqual([{ userId: 'alice', connections: 1 }]);
    expect(await b.add(CH, 'alice')).toBe(false);
  });

  it('while the link is reported down, calls reject at once', async () => {
    let up = true;
    const p = await open({ linkUp: () => up });
    await p.add(CH, 'alice');
    up = false;
    await expect(p.add(CH, 'bob')).rejects.toThrow();
    await expect(p.remove(CH, 'alice')).rejects.toThrow();
    await expect(p.list(CH)).rejects.toThrow();
  });

  it('after calls fail while the link is reported down, the others see what those calls said once it is up', async () => {
    let up = true;
    const a = await open({ linkUp: () => up, heartbeatMs: 100 });
    const b = await open();
    await a.add(CH, 'alice');
    up = false;
    await expect(a.add(CH, 'bob')).rejects.toThrow();
    await expect(a.remove(CH, 'alice')).rejects.toThrow();
    up = true;
    await waitFor(async () => sameUsers(await b.list(CH), [{ userId: 'bob', connections: 1 }]), "a's share to be put right");
    expect(await b.add(CH, 'alice')).toBe(true);
  });

  describe('with its server killed', () => {
    const broken = useBackend(kind);

    it("calls reject; once the server is back, empty, the instance's share is put back", async () => {
      const p = await open({}, broken);
      await p.add(CH, 'alice');
      await broken().breakBackend!();
      await expect(p.add(CH, 'bob')).rejects.toThrow();
      await expect(p.remove(CH, 'alice')).rejects.toThrow();
      await expect(p.list(CH)).rejects.toThrow();
      await broken().restoreBackend!();
      // What the instance was told while Redis was away counts: bob joined, alice left.
      await waitFor(async () => sameUsers(await p.list(CH), [{ userId: 'bob', connections: 1 }]), 'the share to be put back');
    });
  });
});
