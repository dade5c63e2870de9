import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { PresenceUser } from 'switchboard-client/protocol';
import { MemoryPresence } from '../../src/adapters/presence/memory.js';
import { FlexibleRateLimiter } from '../../src/adapters/ratelimit/flexible.js';
import { openStore } from '../../src/adapters/store/index.js';
import type { RateSpec } from '../../src/config.js';
import { Chat, type Session } from '../../src/core/chat.js';
import type { Principal } from '../../src/ports/authenticator.js';
import type { Broadcaster, EventArgs, ServerEvent } from '../../src/ports/broadcaster.js';
import { StoreError, type MessageDraft, type MessageStore } from '../../src/ports/message-store.js';
import type { Presence } from '../../src/ports/presence.js';
import type { Rooms } from '../../src/ports/rooms.js';

/** One call to the Broadcaster: which method, to whom, what. */
export interface Sent {
  method: 'toChannel' | 'toOthers' | 'toConnection' | 'toEveryone';
  event: ServerEvent;
  payload: unknown;
  channelId?: string;
  connectionId?: string;
}

/** A Broadcaster that records every call instead of delivering. */
export class RecordingBroadcaster implements Broadcaster {
  readonly sent: Sent[] = [];

  toChannel<E extends ServerEvent>(channelId: string, event: E, ...args: EventArgs<E>): void {
    this.sent.push({ method: 'toChannel', channelId, event, payload: args[0] });
  }
  toOthers<E extends ServerEvent>(connectionId: string, channelId: string, event: E, ...args: EventArgs<E>): void {
    this.sent.push({ method: 'toOthers', connectionId, channelId, event, payload: args[0] });
  }
  toConnection<E extends ServerEvent>(connectionId: string, event: E, ...args: EventArgs<E>): void {
    this.sent.push({ method: 'toConnection', connectionId, event, payload: args[0] });
  }
  toEveryone<E extends ServerEvent>(event: E, ...args: EventArgs<E>): void {
    this.sent.push({ method: 'toEveryone', event, payload: args[0] });
  }

  of(event: ServerEvent): Sent[] {
    return this.sent.filter((s) => s.event === event);
  }
}

/** The Rooms of one instance, in memory; every departure is reported to onLeft as the port says. */
export class FakeRooms implements Rooms {
  readonly evictions: { channelId: string; userId: string }[] = [];
  private readonly joined = new Map<string, Set<string>>();
  private readonly users = new Map<string, string>();
  private readonly listeners: ((connectionId: string, channelId: string) => void)[] = [];

  /** A connection of `userId` opens (the transport's part). */
  open(connectionId: string, userId: string): void {
    this.users.set(connectionId, userId);
    this.joined.set(connectionId, new Set());
  }

  /** The connection closes: it leaves every channel, then is gone. */
  close(connectionId: string): void {
    for (const channelId of this.joined.get(connectionId) ?? []) void this.leave(connectionId, channelId);
    this.joined.delete(connectionId);
    this.users.delete(connectionId);
  }

  async enter(connectionId: string, channelId: string): Promise<void> {
    this.joined.get(connectionId)?.add(channelId);
  }

  async leave(connectionId: string, channelId: string): Promise<void> {
    if (!this.joined.get(connectionId)?.delete(channelId)) return;
    for (const l of this.listeners) l(connectionId, channelId);
  }

  isJoined(connectionId: string, channelId: string): boolean {
    return this.joined.get(connectionId)?.has(channelId) ?? false;
  }

  joinedCount(connectionId: string): number {
    return this.joined.get(connectionId)?.size ?? 0;
  }

  evict(channelId: string, userId: string): void {
    this.evictions.push({ channelId, userId });
    for (const [connectionId, user] of this.users) if (user === userId) void this.leave(connectionId, channelId);
  }

  onLeft(listener: (connectionId: string, channelId: string) => void): void {
    this.listeners.push(listener);
  }
}

/**
 * A real store behind a fault switch: while `shouldFail` is set every call rejects as a lost database
 * would (StoreError 'unavailable'); `hold()` makes calls wait until its release is called.
 */
export class FaultSwitchStore implements MessageStore {
  shouldFail = false;
  private gate: Promise<void> | undefined;

  constructor(readonly inner: MessageStore) {}

  hold(): () => void {
    let release!: () => void;
    this.gate = new Promise((r) => (release = r));
    return () => {
      this.gate = undefined;
      release();
    };
  }

  private async call<T>(run: () => Promise<T>): Promise<T> {
    if (this.gate) await this.gate;
    if (this.shouldFail) throw new StoreError('unavailable', 'the fault switch is on');
    return run();
  }

  migrate = () => this.call(() => this.inner.migrate());
  ensurePublicChannels = (ids: readonly string[]) => this.call(() => this.inner.ensurePublicChannels(ids));
  createChannel = (input: { id: string; name: string; isPrivate: boolean }) => this.call(() => this.inner.createChannel(input));
  getChannel = (id: string) => this.call(() => this.inner.getChannel(id));
  listChannels = (userId?: string) => this.call(() => this.inner.listChannels(userId));
  isMember = (channelId: string, userId: string) => this.call(() => this.inner.isMember(channelId, userId));
  addMember = (channelId: string, userId: string) => this.call(() => this.inner.addMember(channelId, userId));
  removeMember = (channelId: string, userId: string) => this.call(() => this.inner.removeMember(channelId, userId));
  revokedAt = (channelId: string, userId: string) => this.call(() => this.inner.revokedAt(channelId, userId));
  append = (drafts: readonly MessageDraft[]) => this.call(() => this.inner.append(drafts));
  history: MessageStore['history'] = (channelId, query) => this.call(() => this.inner.history(channelId, query));
  ping = () => this.call(() => this.inner.ping());
  close = () => this.inner.close();
}

/** MemoryPresence behind a fault switch: while `shouldFail` is set every call rejects. */
export class FaultSwitchPresence implements Presence {
  shouldFail = false;
  private readonly inner = new MemoryPresence();

  private call<T>(run: () => Promise<T>): Promise<T> {
    return this.shouldFail ? Promise.reject(new Error('presence is down')) : run();
  }

  start = () => this.inner.start();
  add = (channelId: string, userId: string) => this.call(() => this.inner.add(channelId, userId));
  remove = (channelId: string, userId: string) => this.call(() => this.inner.remove(channelId, userId));
  list = (channelId: string): Promise<PresenceUser[]> => this.call(() => this.inner.list(channelId));
  close = () => this.inner.close();
}

export const principal = (userId: string, o: { admin?: boolean; channels?: string[]; issuedAt?: number } = {}): Principal => ({
  userId,
  name: undefined,
  isAdmin: o.admin ?? false,
  channels: o.channels ?? [],
  expiresAt: Date.now() + 3_600_000,
  issuedAt: o.issuedAt ?? Date.now(),
});

export interface CoreWorld {
  chat: Chat;
  store: FaultSwitchStore;
  rooms: FakeRooms;
  broadcaster: RecordingBroadcaster;
  presence: FaultSwitchPresence;
  /** Opens a connection for `who` (a user id, or a principal) and tells the core, as the gateway does. */
  connect(who: string | Principal): Session;
  /** Closes a connection, as a disconnect does: rooms first, then the core. */
  disconnect(session: Session): void;
  /** Stores `n` messages in the channel directly (no broadcast). */
  seed(channelId: string, n: number): Promise<void>;
  close(): Promise<void>;
}

export interface CoreWorldOptions {
  /** @default 1000 per 10 s */
  messages?: RateSpec;
  /** Read points per user. @default 100000 per 10 s */
  reads?: RateSpec;
  /** @default 0: no presence cache */
  presenceCacheMs?: number;
  /** @default 0: every notice at once */
  noticeIntervalMs?: number;
  /** @default 1000 */
  presenceMaxUsers?: number;
  /** @default 10 */
  channelsPerConnection?: number;
}

export const INSTANCE_ID = 'core-test';

/** The core over a real SQLite store in a temp dir (channels general and random), in-memory presence and limits. */
export async function coreWorld(options: CoreWorldOptions = {}): Promise<CoreWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-core-'));
  const store = new FaultSwitchStore(openStore(`sqlite:${join(dir, 'core.db')}`, pino({ level: 'silent' })));
  await store.migrate();
  await store.ensurePublicChannels(['general', 'random']);
  const rooms = new FakeRooms();
  const broadcaster = new RecordingBroadcaster();
  const reads = options.reads ?? { points: 100_000, durationMs: 10_000 };
  const presence = new FaultSwitchPresence();
  const chat = new Chat({
    store,
    presence,
    broadcaster,
    rooms,
    messageLimiter: new FlexibleRateLimiter(options.messages ?? { points: 1000, durationMs: 10_000 }, { name: 'messages' }),
    readLimiter: { limiter: new FlexibleRateLimiter(reads, { name: 'reads' }), points: reads.points },
    presenceCacheMs: options.presenceCacheMs ?? 0,
    noticeIntervalMs: options.noticeIntervalMs ?? 0,
    presenceMaxUsers: options.presenceMaxUsers ?? 1000,
    logger: pino({ level: 'silent' }),
    instanceId: INSTANCE_ID,
    channelsPerConnection: options.channelsPerConnection ?? 10,
  });
  let connections = 0;
  return {
    chat,
    store,
    rooms,
    broadcaster,
    presence,
    connect(who) {
      const session: Session = { id: `conn-${++connections}`, principal: typeof who === 'string' ? principal(who) : who };
      rooms.open(session.id, session.principal.userId);
      chat.membership.connect(session);
      return session;
    },
    disconnect(session) {
      rooms.close(session.id);
      chat.membership.disconnect(session.id);
    },
    async seed(channelId, n) {
      const drafts = Array.from({ length: n }, (_, i) => ({ channelId, userId: 'seeder', content: `m${i + 1}`, clientMessageId: `seed-${i + 1}` }));
      await store.inner.append(drafts);
    },
    async close() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Lets queued promise callbacks run (presence updates after a departure are not awaited by anyone). */
export const settle = () => new Promise<void>((r) => setImmediate(r));
