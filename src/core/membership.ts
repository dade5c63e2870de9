import type { Logger } from 'pino';
import { ErrorCode, SwitchboardError, MAX_MISSED, type JoinResult, type PresenceResult, type PresenceUser, type TypingResult } from 'switchboard-client/protocol';
import type { Principal } from '../ports/authenticator.js';
import type { Broadcaster } from '../ports/broadcaster.js';
import type { MessageStore } from '../ports/message-store.js';
import type { Presence } from '../ports/presence.js';
import type { Rooms } from '../ports/rooms.js';
import type { ChannelAccess } from './access.js';
import { forbidden, fromStore } from './errors.js';
import { NoticeDamper } from './notice-damper.js';
import { PresenceView } from './presence-view.js';
import { presenceCost, type ReadBudget } from './read-budget.js';
import type { Session } from './session.js';
import { TypingThrottle } from './typing-throttle.js';

export interface MembershipDeps {
  store: Pick<MessageStore, 'getChannel' | 'history'>;
  presence: Presence;
  broadcaster: Broadcaster;
  rooms: Rooms;
  access: ChannelAccess;
  logger: Logger;
  /** Shown to the joiner in `joined`. */
  instanceId: string;
  /** Channels one connection may be in at once. */
  channelsPerConnection: number;
  /** Typing signals per user and channel that reach the others: one per this interval. @default 1000 */
  typingIntervalMs?: number;
  /** The per-user read budget that `presence` spends from. */
  readBudget: ReadBudget;
  /** Most users one `presence` answer lists. @default 1000 */
  presenceMaxUsers?: number;
  /** How long a channel's presence list is reused on this instance; 0: never. @default 1000 */
  presenceCacheMs?: number;
  /** At most one user_joined/user_left per user and channel per this interval; 0: every one. @default 1000 */
  noticeIntervalMs?: number;
}

/** How long a connection at its channel limit is told to wait: until it leaves one, really. */
const CHANNEL_LIMIT_RETRY_MS = 60_000;

const now = () => new Date().toISOString();

/**
 * Being in a channel: join (with catch-up), leave, typing and presence, and the `user_joined` /
 * `user_left` notices. Presence counts each connection once per channel it is in, from its join until
 * it leaves the room however that happens (leave, disconnect, an admin's eviction on any instance).
 */
export class Membership {
  private readonly deps: MembershipDeps;
  private readonly typingThrottle: TypingThrottle;
  private readonly view: PresenceView;
  private readonly notices: NoticeDamper;
  private readonly presenceMaxUsers: number;
  /**
   * Per connection of this instance: who it is, the channels it is counted in presence for, and the
   * channels it is joining (awaits in flight), which count against its channel limit.
   */
  private readonly sessions = new Map<string, { principal: Principal; counted: Set<string>; joining: Set<string> }>();

  constructor(deps: MembershipDeps) {
    this.deps = deps;
    this.typingThrottle = new TypingThrottle(deps.typingIntervalMs ?? 1000);
    this.view = new PresenceView(deps.presence, deps.presenceCacheMs ?? 1000);
    this.notices = new NoticeDamper(deps.noticeIntervalMs ?? 1000);
    this.presenceMaxUsers = deps.presenceMaxUsers ?? 1000;
    deps.rooms.onLeft((connectionId, channelId) => this.departed(connectionId, channelId));
  }

  /** A connection opened. */
  connect(session: Session): void {
    this.sessions.set(session.id, { principal: session.principal, counted: new Set(), joining: new Set() });
  }

  /** A connection closed (after it left its rooms). */
  disconnect(connectionId: string): void {
    this.sessions.delete(connectionId);
  }

  /** The instance is closing: notices still waiting for their interval are dropped. */
  close(): void {
    this.notices.close();
  }

  /**
   * Authorizes, enters the room, answers with the catch-up, tells the joiner `joined` and, on the
   * user's first connection in the channel, the others `user_joined`.
   */
  async join(session: Session, channelId: string, sinceSeq?: number): Promise<JoinResult> {
    const reserved = this.reserveSlot(session.id, channelId);
    try {
      return await this.enterAndCatchUp(session, channelId, sinceSeq);
    } finally {
      if (reserved) this.sessions.get(session.id)?.joining.delete(channelId);
    }
  }

  private async enterAndCatchUp(session: Session, channelId: string, sinceSeq: number | undefined): Promise<JoinResult> {
    const { rooms } = this.deps;
    const already = rooms.isJoined(session.id, channelId);
    await this.deps.access.authorize(session.principal, channelId);
    // In the room before the catch-up is read: a message stored in between arrives live, in
    // `missed`, or both (clients drop seqs they hold), never in neither.
    await rooms.enter(session.id, channelId);
    let result: JoinResult;
    try {
      result = await this.catchUp(channelId, sinceSeq);
    } catch (err) {
      if (!already) await rooms.leave(session.id, channelId);
      throw err;
    }
    this.deps.broadcaster.toConnection(session.id, 'joined', { channelId, lastSeq: result.lastSeq, instance: this.deps.instanceId });
    await this.count(session, channelId);
    return result;
  }

  /** Leaves the room and tells the leaver `left`; presence and `user_left` follow from the departure. */
  async leave(session: Session, channelId: string): Promise<{ channelId: string }> {
    if (!this.deps.rooms.isJoined(session.id, channelId)) throw forbidden('Not joined to this channel');
    await this.deps.rooms.leave(session.id, channelId);
    this.deps.broadcaster.toConnection(session.id, 'left', { channelId });
    return { channelId };
  }

  /** Relays a typing signal to the others in the room, at most one per user and channel per interval. */
  typing(session: Session, channelId: string): TypingResult {
    if (!this.deps.rooms.isJoined(session.id, channelId)) throw forbidden('Join the channel first');
    const { userId } = session.principal;
    if (!this.typingThrottle.allow(userId, channelId)) return { throttled: true };
    this.deps.broadcaster.toOthers(session.id, channelId, 'user_typing', { userId, channelId });
    return {};
  }

  /**
   * Who is in the channel, across every instance (as of at most `presenceCacheMs` ago for the other
   * instances' connections). Spends the reader's budget by the channel's size, as last seen, before
   * reading: a reader over the budget costs the backend nothing.
   */
  async presence(principal: Principal, channelId: string): Promise<PresenceResult> {
    await this.deps.access.authorize(principal, channelId);
    await this.deps.readBudget.spend(principal.userId, presenceCost(this.view.lastSize(channelId) ?? 0));
    let users: PresenceUser[];
    try {
      users = await this.view.list(channelId);
    } catch (err) {
      throw new SwitchboardError(ErrorCode.UNAVAILABLE, 'Presence is unavailable right now; retry shortly', { cause: err });
    }
    if (users.length <= this.presenceMaxUsers) return { users };
    return { users: users.slice(0, this.presenceMaxUsers), total: users.length, truncated: true };
  }

  /**
   * Holds one of the connection's channel slots for a join of a channel it is neither in nor already
   * joining; RATE_LIMITED when the channels it is in plus those it is joining fill them. Resolves true
   * when this join holds the slot (and must free it when it ends).
   */
  private reserveSlot(connectionId: string, channelId: string): boolean {
    const { rooms } = this.deps;
    const joining = this.sessions.get(connectionId)?.joining ?? new Set<string>();
    if (joining.has(channelId) || rooms.isJoined(connectionId, channelId)) return false;
    let inFlight = 0;
    for (const c of joining) if (!rooms.isJoined(connectionId, c)) inFlight++;
    const joined = rooms.joinedCount(connectionId) + inFlight;
    if (joined >= this.deps.channelsPerConnection) throw this.channelLimit(joined);
    joining.add(channelId);
    return true;
  }

  private channelLimit(joined: number): SwitchboardError {
    return new SwitchboardError(ErrorCode.RATE_LIMITED, `This connection has joined ${joined} channels, the most allowed; leave one first`, {
      retryAfterMs: CHANNEL_LIMIT_RETRY_MS,
    });
  }

  private async catchUp(channelId: string, sinceSeq: number | undefined): Promise<JoinResult> {
    const { store } = this.deps;
    if (sinceSeq === undefined) {
      const channel = await fromStore(store.getChannel(channelId));
      return { channelId, lastSeq: channel?.lastSeq ?? 0 };
    }
    const [channel, page] = await fromStore(Promise.all([store.getChannel(channelId), store.history(channelId, { afterSeq: sinceSeq, limit: MAX_MISSED })]));
    const lastSeq = Math.max(channel?.lastSeq ?? 0, page.messages.at(-1)?.seq ?? 0);
    return { channelId, lastSeq, missed: page.messages, hasMore: page.hasMore };
  }

  /**
   * Counts the connection in presence, once per channel and only while it is still in the room: a
   * second join in flight, or a leave, disconnect or eviction during the join's awaits, leaves no
   * count behind.
   */
  private async count(session: Session, channelId: string): Promise<void> {
    const entry = this.sessions.get(session.id);
    if (!entry || entry.counted.has(channelId) || !this.deps.rooms.isJoined(session.id, channelId)) return;
    entry.counted.add(channelId);
    const { userId } = session.principal;
    this.view.applyLocal(channelId, userId, 1);
    if (await this.presenceChange('add', channelId, userId)) {
      this.notices.tell(channelId, userId, 'user_joined', () =>
        this.deps.broadcaster.toOthers(session.id, channelId, 'user_joined', { userId, channelId, timestamp: now() }),
      );
    }
  }

  private departed(connectionId: string, channelId: string): void {
    const entry = this.sessions.get(connectionId);
    if (!entry?.counted.delete(channelId)) return;
    const { userId } = entry.principal;
    this.view.applyLocal(channelId, userId, -1);
    void this.presenceChange('remove', channelId, userId).then((last) => {
      if (!last) return;
      this.notices.tell(channelId, userId, 'user_left', () => this.deps.broadcaster.toChannel(channelId, 'user_left', { userId, channelId, timestamp: now() }));
    });
  }

  /**
   * Resolves true when the others should hear of it: the user's first (add) or last (remove)
   * connection in the channel. When presence cannot answer it says true: better a repeated notice
   * than a missing one.
   */
  private presenceChange(change: 'add' | 'remove', channelId: string, userId: string): Promise<boolean> {
    return this.deps.presence[change](channelId, userId).catch((err: unknown) => {
      this.deps.logger.warn({ channelId, reason: (err as Error).message }, `presence ${change} failed`);
      return true;
    });
  }
}
