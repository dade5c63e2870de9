import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from 'switchboard-client/protocol';
import { EVENT_NAMES } from 'switchboard-client/protocol';
import { call, closeAllClients, connect, type TestSocket } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { token } from '../helpers/tokens.js';

const NUM_RUNS = 150;
/** Replays a failing run: FC_SEED=<seed printed by fast-check> npx vitest run test/integration/fuzz.test.ts */
const SEED = process.env['FC_SEED'] === undefined ? {} : { seed: Number(process.env['FC_SEED']) };
const CODES = new Set<string>(Object.values(ErrorCode));
/** Names socket.io-client refuses to emit. */
const RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);

const KEYS = ['channelId', 'content', 'clientMessageId', 'sinceSeq', 'beforeSeq', 'afterSeq', 'limit', '__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty'];
const key = fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 10 }));
const anything = fc.anything({ key, maxDepth: 3, withNullPrototype: true, withObjectString: true, withSparseArray: true });
const channelIdish = fc.oneof(
  fc.constantFrom('general', 'random', '__proto__', 'constructor', 'toString', '', ' ', 'a'.repeat(64), 'a'.repeat(65), 'gen eral', 'général'),
  fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/),
  fc.string({ unit: 'binary', maxLength: 80 }),
  anything,
);
const text = fc.oneof(
  fc.string({ maxLength: 50 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: 'binary-ascii', minLength: 3990, maxLength: 4010 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).map((s) => s.repeat(300)),
  fc.constantFrom('', ' ', '\u0000', '\ud800', 'a\udc00b', 'x'.repeat(4000), 'x'.repeat(4001), '😀'.repeat(4000), '😀'.repeat(4001)),
  anything,
);
const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, 1, 200, 201, Number.MAX_SAFE_INTEGER, 2 ** 60, 1.5), anything);
/** Objects close to the real payloads: some fields right, some wrong, some extra. */
const nearValid = fc
  .record(
    { channelId: channelIdish, content: text, clientMessageId: text, sinceSeq: number, beforeSeq: number, afterSeq: number, limit: number },
    { requiredKeys: [] },
  )
  .chain((base) => fc.option(fc.dictionary(key, anything, { minKeys: 1, maxKeys: 2 }), { nil: undefined }).map((extra) => (extra ? { ...extra, ...base } : base)));
const payload = fc.oneof(
  { weight: 3, arbitrary: anything },
  { weight: 4, arbitrary: nearValid },
  { weight: 1, arbitrary: channelIdish },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.array(fc.oneof(anything, nearValid), { maxLength: 4 }) },
);
/** The arguments of one emit (before the ack): usually one payload, sometimes none or several. */
const args = fc.oneof(
  { weight: 6, arbitrary: payload.map((p) => [p]) },
  { weight: 1, arbitrary: fc.constant([] as unknown[]) },
  { weight: 2, arbitrary: fc.array(payload, { minLength: 2, maxLength: 4 }) },
);

/**
 * A frame above MAX_FRAME_BYTES (64 KiB) closes the connection by design (a transport rule, tested in
 * events.test.ts and test/security); this suite shares one socket, so it keeps every frame below it.
 */
function underFrameLimit(event: string, eventArgs: unknown[]): boolean {
  try {
    return Buffer.byteLength(JSON.stringify([event, ...eventArgs]) ?? '') < 60_000;
  } catch {
    return true;
  }
}

describe('fuzz: random payloads at every event', () => {
  let server: TestServer;
  let socket: TestSocket;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUnhandled);
    // Limits out of the way: the fuzz sends far more events than a client may.
    server = await startServer({ RATE_LIMIT_EVENTS: '1000000/10s', RATE_LIMIT_MESSAGES: '1000000/10s', RATE_LIMIT_READS: '1000000/10s' });
    socket = await connect(server.url, await token('fuzzer'));
    expect((await call(socket, 'join_channel', 'general')).ok).toBe(true);
  });
  afterAll(async () => {
    closeAllClients();
    await server?.close();
    process.off('unhandledRejection', onUnhandled);
    process.off('uncaughtException', onUnhandled);
  });

  /** One event with random arguments: a contract answer, then a valid event is still answered. */
  async function exercise(event: string, eventArgs: unknown[]): Promise<any> {
    fc.pre(underFrameLimit(event, eventArgs));
    const ack = await call(socket, event, ...eventArgs);
    if (ack?.ok !== true) {
      expect(ack).toMatchObject({ ok: false, error: { code: expect.any(String), message: expect.any(String) } });
      expect(CODES.has(ack.error.code)).toBe(true);
      // INTERNAL would mean an input reached a code path that threw unexpectedly.
      expect(ack.error.code).not.toBe(ErrorCode.INTERNAL);
      expect(ack.error.code).not.toBe(ErrorCode.UNAUTHENTICATED);
    }
    expect(socket.connected).toBe(true);
    expect((await call(socket, 'presence', { channelId: 'random' })).ok).toBe(true);
    expect(unhandled).toEqual([]);
    return ack;
  }

  it.each(EVENT_NAMES)('%s', async (event) => {
    const seen = { ok: 0, error: 0 };
    await fc.assert(
      fc.asyncProperty(args, async (a) => {
        const ack = await exercise(event, a);
        if (ack?.ok === true) seen.ok++;
        else seen.error++;
        // Rejoin so send_message and typing keep having a joined channel to hit.
        if (event === 'leave_channel') await call(socket, 'join_channel', 'general');
      }),
      { numRuns: NUM_RUNS, ...SEED },
    );
    // The property ran: every run got an answer.
    expect(seen.ok + seen.error).toBeGreaterThanOrEqual(NUM_RUNS);
  });

  it('unknown event names', async () => {
    const name = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'joined', 'error', 'new_message', 'JOIN_CHANNEL', 'join_channel ')).filter((n) => !RESERVED.has(n) && !(EVENT_NAMES as readonly string[]).includes(n));
    await fc.assert(
      fc.asyncProperty(name, args, async (n, a) => {
        const ack = await exercise(n, a);
        expect(ack).toMatchObject({ ok: false, error: { code: ErrorCode.INVALID_PAYLOAD } });
      }),
      { numRuns: NUM_RUNS, ...SEED },
    );
  });

  it('random payloads without a callback leave the socket answering', async () => {
    let errors = 0;
    socket.on('error', () => errors++);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...EVENT_NAMES), args, async (event, a) => {
        fc.pre(underFrameLimit(event, a));
        (socket as unknown as { emit(e: string, ...x: unknown[]): void }).emit(event, ...a);
        expect((await call(socket, 'presence', { channelId: 'general' })).ok).toBe(true);
        if (event === 'leave_channel') await call(socket, 'join_channel', 'general');
      }),
      { numRuns: NUM_RUNS, ...SEED },
    );
    expect(errors).toBeGreaterThan(0);
    expect(socket.connected).toBe(true);
    expect(unhandled).toEqual([]);
  });
});
