import { isRetryable } from './protocol/errors.js';
import type { ChannelEvent, HistoryResult, JoinPayload, JoinResult, Message } from './protocol/events.js';
import { MAX_PAGE } from './protocol/limits.js';
import type { Connection } from './connection.js';
import { ack, type IoSocket, type Timer } from './socket.js';
import { callSafely, closedError, type SwitchboardClientError } from './errors.js';
import type { ClientOptions } from './options.js';
import { retryDelay, sleep } from './retry.js';
import { ChannelStream } from './stream.js';

/** A member arriving in or leaving a channel (`user_joined` / `user_left`). */
export interface PresenceEvent extends ChannelEvent {
  type: 'joined' | 'left';
}

export interface JoinInfo {
  channelId: string;
  /** The channel's newest seq when the join was answered. */
  lastSeq: number;
  /** False for the first join, true for each re-join after a reconnect. */
  rejoin: boolean;
}

export interface SubscriptionHandlers {
  /** Each message once, in seq order, with no gap: live, caught up after a reconnect, or filled from history. */
  onMessage?: (message: Message) => void;
  /** Another member is typing (volatile: may be dropped). */
  onTyping?: (event: { userId: string; channelId: string }) => void;
  /** Another member's first connection joined, or last connection left. */
  onPresence?: (event: PresenceEvent) => void;
  /** Every (re-)join; a good moment to refresh a presence list. */
  onJoin?: (info: JoinInfo) => void;
  /** The server refused the join (FORBIDDEN …); the subscription is over. */
  onError?: (error: SwitchboardClientError) => void;
}

export interface SubscribeOptions {
  /**
   * Deliver every message after this seq (e.g. the last one of a history page the app shows, or one
   * it kept from an earlier session). Without it the stream starts after the channel's newest message
   * at the time of the first join. Ignored when the channel is already subscribed.
   */
  sinceSeq?: number;
}

/** What the subscriptions tell the outbox. */
export interface SubscriptionHooks {
  /** A channel was joined on the current connection: its waiting sends may go. */
  joined(): void;
  /** The server refused a channel for good: its waiting sends fail with `error`. */
  refused(channelId: string, error: SwitchboardClientError): void;
}

interface Subscription {
  channelId: string;
  handlers: Set<SubscriptionHandlers>;
  stream: ChannelStream;
  /** The connection (epoch) on which the join was answered, or -1. */
  joinedOn: number;
  everJoined: boolean;
  /** Newest seq the server reported. */
  knownLastSeq: number;
  filling: boolean;
  fillAgain: boolean;
  gapTimer: Timer | undefined;
  retryTimer: Timer | undefined;
  joinFailures: number;
  closed: boolean;
}

/**
 * The subscribed channels, each with one ChannelStream shared by its handlers. Guarantees: a channel
 * is joined on every connection (after a reconnect with `sinceSeq` = its last delivered seq) until it
 * is unsubscribed or refused for good; `onMessage` sees each seq once, in order, without a gap: what
 * a join's `missed` leaves out, a gap still open after `gapFillDelay`, or a `resync` is fetched with
 * `history` until the server has no more. Joins and pages that fail with a retryable error
 * (`isRetryable`) are retried after `retryDelay`; any other error ends the subscription (join) or
 * goes to `onError` (page).
 */
export class Subscriptions {
  private readonly subs = new Map<string, Subscription>();

  constructor(
    private readonly link: Connection,
    private readonly o: ClientOptions,
    private readonly hooks: SubscriptionHooks,
  ) {}

  subscribe(channelId: string, handlers: SubscriptionHandlers, options: SubscribeOptions = {}): () => void {
    if (this.link.closed) throw closedError();
    const sub = this.subs.get(channelId) ?? this.create(channelId, options);
    const entry = { ...handlers };
    sub.handlers.add(entry);
    return () => {
      sub.handlers.delete(entry);
      if (sub.handlers.size > 0 || sub.closed) return;
      this.subs.delete(channelId);
      const socket = sub.joinedOn === this.link.epoch ? this.link.socket : undefined;
      this.dispose(sub);
      if (socket?.connected) socket.emit('leave_channel', channelId, () => undefined);
    };
  }

  /** Whether sends and typing for `channelId` may go now: it is joined on this connection, or not subscribed. */
  ready(channelId: string): boolean {
    const sub = this.subs.get(channelId);
    return !sub || sub.joinedOn === this.link.epoch;
  }

  /** A message the server acknowledged storing: into its channel's stream, if joined on this connection. */
  deliver(message: Message): void {
    if (this.subs.get(message.channelId)?.joinedOn === this.link.epoch) this.receive(message);
  }

  /** A new connection: join every channel on it. */
  rejoinAll(): void {
    for (const sub of this.subs.values()) void this.join(sub);
  }

  /** The connection ended: no channel is joined any more. */
  connectionLost(): void {
    for (const sub of this.subs.values()) sub.joinedOn = -1;
  }

  /** `close()`: every subscription ends. */
  closeAll(): void {
    for (const sub of this.subs.values()) this.dispose(sub);
    this.subs.clear();
  }

  /** Routes the channel events of a new socket to the subscriptions while it is the current one. */
  listen(socket: IoSocket, current: () => boolean): void {
    const subOf = (channelId: string | undefined) => (current() && channelId !== undefined ? this.subs.get(channelId) : undefined);
    socket.on('new_message', (m) => current() && this.receive(m));
    socket.on('new_messages', (ms) => {
      if (current() && Array.isArray(ms)) for (const m of ms) this.receive(m);
    });
    socket.on('user_typing', (e) => {
      const sub = subOf(e?.channelId);
      if (sub) this.notify(sub, (h) => h.onTyping?.({ userId: e.userId, channelId: e.channelId }));
    });
    socket.on('user_joined', (e) => {
      const sub = subOf(e?.channelId);
      if (sub) this.notify(sub, (h) => h.onPresence?.({ type: 'joined', ...e }));
    });
    socket.on('user_left', (e) => {
      const sub = subOf(e?.channelId);
      if (sub) this.notify(sub, (h) => h.onPresence?.({ type: 'left', ...e }));
    });
    socket.on('resync', () => {
      if (!current()) return;
      for (const sub of this.subs.values()) if (sub.joinedOn === this.link.epoch) void this.fill(sub);
    });
  }

  private create(channelId: string, options: SubscribeOptions): Subscription {
    const sub: Subscription = {
      channelId,
      handlers: new Set(),
      stream: new ChannelStream((m) => this.notify(sub, (h) => h.onMessage?.(m)), options.sinceSeq),
      joinedOn: -1,
      everJoined: false,
      knownLastSeq: 0,
      filling: false,
      fillAgain: false,
      gapTimer: undefined,
      retryTimer: undefined,
      joinFailures: 0,
      closed: false,
    };
    this.subs.set(channelId, sub);
    if (this.link.state.status === 'connected') void this.join(sub);
    return sub;
  }

  private dispose(sub: Subscription): void {
    sub.closed = true;
    sub.joinedOn = -1;
    clearTimeout(sub.gapTimer);
    clearTimeout(sub.retryTimer);
  }

  private notify(sub: Subscription, fn: (h: SubscriptionHandlers) => void): void {
    for (const h of [...sub.handlers]) callSafely(this.o.onError, () => fn(h));
  }

  private async join(sub: Subscription): Promise<void> {
    const socket = this.link.socket;
    if (!socket || sub.closed) return;
    const conn = this.link.epoch;
    clearTimeout(sub.retryTimer);
    const since = sub.stream.delivered;
    const payload: JoinPayload = since === undefined ? sub.channelId : { channelId: sub.channelId, sinceSeq: since };
    const r = await ack<JoinResult>(socket, this.o.requestTimeout, (s, done) => s.emit('join_channel', payload, done));
    if (sub.closed || conn !== this.link.epoch || this.link.socket !== socket) return;
    if (r.ok) return this.joined(sub, conn, r.value);
    if (r.error && !isRetryable(r.error.code)) return this.refused(sub, r.error);
    if (r.error === undefined && r.lost === 'disconnected') return; // the next connection re-joins
    sub.retryTimer = setTimeout(() => {
      if (conn === this.link.epoch && this.link.socket === socket) void this.join(sub);
    }, retryDelay(r.error, sub.joinFailures++, this.o));
  }

  private joined(sub: Subscription, conn: number, { lastSeq, missed, hasMore }: JoinResult): void {
    const rejoin = sub.everJoined;
    sub.joinedOn = conn;
    sub.everJoined = true;
    sub.joinFailures = 0;
    sub.knownLastSeq = Math.max(sub.knownLastSeq, lastSeq);
    sub.stream.start(lastSeq);
    for (const m of missed ?? []) sub.stream.push(m);
    this.notify(sub, (h) => h.onJoin?.({ channelId: sub.channelId, lastSeq, rejoin }));
    if (hasMore || (sub.stream.delivered ?? 0) < sub.knownLastSeq || sub.stream.hasGap) void this.fill(sub);
    this.hooks.joined();
  }

  /** Refused for good (FORBIDDEN, INVALID_PAYLOAD …): the subscription and its waiting sends end. */
  private refused(sub: Subscription, error: SwitchboardClientError): void {
    this.subs.delete(sub.channelId);
    this.dispose(sub);
    this.hooks.refused(sub.channelId, error);
    this.notify(sub, (h) => (h.onError ? h.onError(error) : this.o.onError(error)));
  }

  private receive(m: Message): void {
    const sub = m && typeof m.channelId === 'string' ? this.subs.get(m.channelId) : undefined;
    if (!sub) return;
    sub.knownLastSeq = Math.max(sub.knownLastSeq, m.seq);
    sub.stream.push(m);
    this.watchGap(sub);
  }

  /** A gap that is still open after `gapFillDelay` is filled from history. */
  private watchGap(sub: Subscription): void {
    if (!sub.stream.hasGap || sub.gapTimer || sub.filling) return;
    sub.gapTimer = setTimeout(() => {
      sub.gapTimer = undefined;
      if (sub.stream.hasGap) void this.fill(sub);
    }, this.o.gapFillDelay);
  }

  /** Catches up (once more if asked again meanwhile), then watches for the next gap. */
  private async fill(sub: Subscription): Promise<void> {
    if (sub.filling) {
      sub.fillAgain = true;
      return;
    }
    sub.filling = true;
    clearTimeout(sub.gapTimer);
    sub.gapTimer = undefined;
    try {
      do {
        sub.fillAgain = false;
        if (!(await this.catchUp(sub))) return;
      } while (sub.fillAgain);
    } finally {
      sub.filling = false;
    }
    this.watchGap(sub);
  }

  /**
   * Fetches the pages after the last delivered seq until the server has no more. False when it had
   * to stop first: the subscription ended, the connection changed, or the server refused.
   */
  private async catchUp(sub: Subscription): Promise<boolean> {
    let failures = 0;
    for (;;) {
      const socket = this.link.socket;
      const conn = this.link.epoch;
      const afterSeq = sub.stream.delivered;
      if (sub.closed || !socket || sub.joinedOn !== conn || afterSeq === undefined) return false;
      const query = { channelId: sub.channelId, afterSeq, limit: MAX_PAGE };
      const r = await ack<HistoryResult>(socket, this.o.requestTimeout, (s, done) => s.emit('history', query, done));
      if (sub.closed || conn !== this.link.epoch) return false;
      if (r.ok) {
        for (const m of r.value.messages) {
          sub.knownLastSeq = Math.max(sub.knownLastSeq, m.seq);
          sub.stream.push(m);
        }
        if (r.value.hasMore) continue;
        // Nothing newer exists: whatever still waits behind a gap cannot be completed.
        if (sub.stream.hasGap) sub.stream.skipGap();
        return true;
      }
      if (r.error === undefined && r.lost === 'disconnected') return false;
      if (r.error && !isRetryable(r.error.code)) {
        this.o.onError(r.error);
        return false;
      }
      await sleep(retryDelay(r.error, failures++, this.o));
    }
  }
}
