import { io, type Socket } from 'socket.io-client';
import { AUTH_INVALID, AUTH_REQUIRED, type ErrorBody } from './protocol/errors.js';
import type {
  AckResponse,
  ChannelEvent,
  ClientToServerEvents,
  HistoryPayload,
  HistoryResult,
  JoinPayload,
  JoinResult,
  Message,
  PresenceUser,
  SendResult,
  ServerToClientEvents,
} from './protocol/events.js';
import { SwitchboardClientError } from './errors.js';
import { backoff, DEFAULT_OPTIONS, type ClientOptions, type CreateClientOptions } from './options.js';
import { ChannelStream } from './stream.js';

type IoSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
type Timer = ReturnType<typeof setTimeout>;

export type ConnectionStatus = 'connecting' | 'connected' | 'reconnecting' | 'offline';

export interface ConnectionState {
  /**
   * - `connecting`: never connected yet, trying;
   * - `connected`: a live connection;
   * - `reconnecting`: the connection was lost (or the instance is shutting down), trying again;
   * - `offline`: not trying: `close()` was called or `reconnectionAttempts` ran out.
   */
  status: ConnectionStatus;
  /** The address of the current (or last) connection attempt. */
  url: string | undefined;
  /** The serving instance's id (the `instance` of `joined`); known once a channel is joined on this connection. */
  instance: string | undefined;
  /** Failed attempts since the last successful connection. */
  attempt: number;
  /** Why the last attempt failed or the last connection ended. */
  lastError: SwitchboardClientError | undefined;
}

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

export interface SwitchboardClient {
  /** The connection's current state. */
  readonly state: Readonly<ConnectionState>;
  /** Calls `listener` now with the current state and on every change; returns the function that stops it. */
  onStateChange(listener: (state: Readonly<ConnectionState>) => void): () => void;
  /** Joins a channel (and re-joins after every reconnect); returns the function that unsubscribes. */
  subscribe(channelId: string, handlers: SubscriptionHandlers, options?: SubscribeOptions): () => void;
  /**
   * Sends a message; resolves with it as stored. Made while offline, it waits in the outbox. Retried
   * with the same `clientMessageId` (so stored once) on timeouts, disconnects, `UNAVAILABLE`,
   * `INTERNAL`, and `RATE_LIMITED` (after `retryAfterMs`, at most `maxRateLimitRetries` times).
   * Rejects with a SwitchboardClientError: `FORBIDDEN`, `INVALID_PAYLOAD`, `PAYLOAD_TOO_LARGE`,
   * `RATE_LIMITED`, `TIMEOUT` (after `sendTimeout`), `CLOSED`, `OFFLINE`.
   */
  send(channelId: string, content: string): Promise<Message>;
  /** Tells the channel's other members this user is typing; at most one signal per `typingInterval`. Returns whether one was sent. */
  typing(channelId: string): boolean;
  /** Who is in the channel, across all instances. */
  presence(channelId: string): Promise<PresenceUser[]>;
  /** A page of stored messages, oldest first (see the protocol's `history`). */
  history(query: HistoryPayload): Promise<HistoryResult>;
  /** Disconnects for good; pending sends and requests reject with `CLOSED`. */
  close(): void;
}

interface Subscription {
  channelId: string;
  handlers: Set<SubscriptionHandlers>;
  stream: ChannelStream;
  /** The connection on which the join was answered, or -1. */
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

interface Outgoing {
  channelId: string;
  content: string;
  clientMessageId: string;
  resolve: (m: Message) => void;
  reject: (e: SwitchboardClientError) => void;
  state: 'queued' | 'inflight' | 'waiting' | 'done';
  failures: number;
  rateLimited: number;
  deadline: Timer | undefined;
  retry: Timer | undefined;
}

type AckOutcome<T> =
  | { ok: true; value: T }
  | { ok: false; error: SwitchboardClientError }
  | { ok: false; error?: undefined; lost: 'timeout' | 'disconnected' };

const TRANSIENT = new Set(['UNAVAILABLE', 'INTERNAL']);

/** A v4 UUID; falls back to getRandomValues where randomUUID is missing (insecure origins). */
export function newId(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  const b = new Uint8Array(16);
  c.getRandomValues(b);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Connects to Switchboard and keeps a gapless, ordered, de-duplicated stream per subscribed channel
 * through reconnects, deploys and outages.
 *
 * @example
 * const client = createClient({ url: 'https://chat.example.com', getToken: () => auth.token() });
 * const off = client.subscribe('general', { onMessage: (m) => console.log(m.seq, m.content) });
 * await client.send('general', 'hello');
 */
export function createClient(options: CreateClientOptions): SwitchboardClient {
  const { url, getToken } = options;
  if (!(typeof url === 'string' || typeof url === 'function' || (Array.isArray(url) && url.length > 0))) {
    throw new TypeError('createClient: url must be a string, a non-empty list of strings or a function');
  }
  if (typeof getToken !== 'function') throw new TypeError('createClient: getToken must be a function');
  return new Client({ ...DEFAULT_OPTIONS, ...stripUndefined(options) } as ClientOptions);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

class Client implements SwitchboardClient {
  private readonly o: ClientOptions;
  private socket: IoSocket | undefined;
  /** Increases with every successful connection; stale callbacks compare against it. */
  private connection = 0;
  private attemptsMade = 0;
  private everConnected = false;
  private tokenStale = false;
  private closed = false;
  private reconnectTimer: Timer | undefined;
  private shutdownTimer: Timer | undefined;
  /** When the instance we are on asked us to be gone (server_shutdown), ms since the epoch. */
  private leaveAt: number | undefined;
  private current: ConnectionState = { status: 'connecting', url: undefined, instance: undefined, attempt: 0, lastError: undefined };
  private readonly listeners = new Set<(s: Readonly<ConnectionState>) => void>();
  private readonly subs = new Map<string, Subscription>();
  private readonly outbox: Outgoing[] = [];
  private readonly lastTyping = new Map<string, number>();
  private connectedWaiters: { resolve: (s: IoSocket) => void; reject: (e: SwitchboardClientError) => void }[] = [];

  constructor(options: ClientOptions) {
    this.o = options;
    void this.open();
  }

  get state(): Readonly<ConnectionState> {
    return this.current;
  }

  onStateChange(listener: (state: Readonly<ConnectionState>) => void): () => void {
    this.listeners.add(listener);
    listener(this.current);
    return () => this.listeners.delete(listener);
  }

  private setState(patch: Partial<ConnectionState>): void {
    const next = { ...this.current, ...patch };
    if (
      next.status === this.current.status &&
      next.url === this.current.url &&
      next.instance === this.current.instance &&
      next.attempt === this.current.attempt &&
      next.lastError === this.current.lastError
    ) {
      return;
    }
    this.current = Object.freeze(next);
    for (const l of [...this.listeners]) this.safely(() => l(this.current));
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.o.onError(err instanceof Error ? err : new Error(String(err)));
    }
  }

  // ── connection ────────────────────────────────────────────────────────────────────────────

  private nextUrl(): string {
    const u = this.o.url;
    const n = this.attemptsMade++;
    if (typeof u === 'string') return u;
    if (typeof u === 'function') return u();
    return u[n % u.length]!;
  }

  private async open(): Promise<void> {
    if (this.closed || this.socket) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const reason = this.tokenStale ? 'expired' : this.everConnected || this.current.attempt > 0 ? 'reconnect' : 'connect';
    let token: string;
    try {
      token = await this.o.getToken({ reason, attempt: this.current.attempt });
    } catch (err) {
      if (this.closed) return;
      return this.attemptFailed(new SwitchboardClientError('UNAUTHENTICATED', `getToken failed: ${(err as Error)?.message ?? String(err)}`, { cause: err }));
    }
    if (this.closed || this.socket) return;
    this.tokenStale = false;
    const url = this.nextUrl();
    this.setState({ url, status: this.everConnected ? 'reconnecting' : 'connecting' });
    const socket: IoSocket = io(url, {
      ...this.o.socketOptions,
      path: this.o.path,
      transports: this.o.transports,
      tryAllTransports: this.o.transports.length > 1,
      forceNew: true,
      multiplex: false,
      reconnection: false,
      timeout: this.o.connectTimeout,
      auth: { token, ...(this.o.batch ? { batch: true } : {}) },
    });
    this.socket = socket;
    this.listen(socket);
  }

  private listen(socket: IoSocket): void {
    const mine = () => this.socket === socket;
    socket.on('connect', () => {
      if (!mine()) return;
      this.connection++;
      this.everConnected = true;
      this.leaveAt = undefined;
      this.setState({ status: 'connected', instance: undefined, attempt: 0, lastError: undefined });
      const waiters = this.connectedWaiters;
      this.connectedWaiters = [];
      for (const w of waiters) w.resolve(socket);
      for (const sub of this.subs.values()) void this.join(sub);
      this.flush();
    });
    socket.on('connect_error', (err: Error & { data?: { code?: string; retryAfterMs?: number } }) => {
      if (!mine()) return;
      this.dropSocket();
      const code = err.data?.code;
      const auth = code === 'UNAUTHENTICATED' || err.message === AUTH_INVALID || err.message === AUTH_REQUIRED;
      if (auth) this.tokenStale = true;
      const error = new SwitchboardClientError(
        auth ? 'UNAUTHENTICATED' : code === 'RATE_LIMITED' ? 'RATE_LIMITED' : 'UNAVAILABLE',
        `Connection failed: ${err.message}`,
        { retryAfterMs: err.data?.retryAfterMs, cause: err },
      );
      this.attemptFailed(error, code === 'RATE_LIMITED' ? err.data?.retryAfterMs : undefined);
    });
    socket.on('disconnect', (reason) => {
      if (!mine()) return;
      this.dropSocket();
      this.connectionLost(new SwitchboardClientError('UNAVAILABLE', `Disconnected: ${reason}`));
    });
    socket.on('server_shutdown', ({ reconnectDelay }) => {
      if (!mine()) return;
      const wait = Math.max(0, Number(reconnectDelay) || 0) + Math.random() * this.o.shutdownJitter;
      this.leaveAt = Date.now() + wait;
      clearTimeout(this.shutdownTimer);
      this.shutdownTimer = setTimeout(() => {
        if (!mine()) return;
        // Leave the draining instance ourselves (socket.io-client would not come back after the
        // server's own disconnect) and go straight to the next address.
        this.dropSocket();
        this.leaveAt = Date.now();
        this.connectionLost(new SwitchboardClientError('UNAVAILABLE', 'The instance is shutting down'));
      }, wait);
    });
    socket.on('error', (e) => {
      if (!mine()) return;
      // The server ends the session right after this (token expired): fetch a fresh token for the next attempt.
      if (e?.code === 'UNAUTHENTICATED') this.tokenStale = true;
    });
    socket.on('joined', (e) => {
      if (mine()) this.setState({ instance: e.instance });
    });
    socket.on('new_message', (m) => {
      if (mine()) this.receive(m);
    });
    socket.on('new_messages', (ms) => {
      if (!mine() || !Array.isArray(ms)) return;
      for (const m of ms) this.receive(m);
    });
    socket.on('user_typing', (e) => {
      const sub = mine() ? this.subs.get(e?.channelId) : undefined;
      if (sub) this.notify(sub, (h) => h.onTyping?.({ userId: e.userId, channelId: e.channelId }));
    });
    socket.on('user_joined', (e) => {
      const sub = mine() ? this.subs.get(e?.channelId) : undefined;
      if (sub) this.notify(sub, (h) => h.onPresence?.({ type: 'joined', ...e }));
    });
    socket.on('user_left', (e) => {
      const sub = mine() ? this.subs.get(e?.channelId) : undefined;
      if (sub) this.notify(sub, (h) => h.onPresence?.({ type: 'left', ...e }));
    });
    socket.on('resync', () => {
      if (!mine()) return;
      for (const sub of this.subs.values()) if (sub.joinedOn === this.connection) void this.fill(sub);
    });
  }

  /** Forgets the current socket and closes it; its pending acks fail and their owners retry. */
  private dropSocket(): void {
    const socket = this.socket;
    if (!socket) return;
    this.socket = undefined;
    clearTimeout(this.shutdownTimer);
    this.shutdownTimer = undefined;
    socket.removeAllListeners();
    socket.close();
  }

  private connectionLost(error: SwitchboardClientError): void {
    if (this.closed) return;
    for (const sub of this.subs.values()) sub.joinedOn = -1;
    this.setState({ status: 'reconnecting', instance: undefined, attempt: 0, lastError: error });
    const planned = this.leaveAt;
    this.leaveAt = undefined;
    // A shutdown notice fixes when to come back; otherwise the first backoff step.
    const delay = planned !== undefined ? Math.max(0, planned - Date.now()) : this.tokenStale ? 0 : backoff(0, this.o);
    this.schedule(delay);
  }

  private attemptFailed(error: SwitchboardClientError, minDelay?: number): void {
    if (this.closed) return;
    const attempt = this.current.attempt + 1;
    if (attempt >= this.o.reconnectionAttempts) {
      this.setState({ status: 'offline', attempt, lastError: error });
      this.giveUp(new SwitchboardClientError('OFFLINE', `Gave up after ${attempt} failed connection attempts: ${error.message}`, { cause: error }));
      return;
    }
    this.setState({ status: this.everConnected ? 'reconnecting' : 'connecting', attempt, lastError: error });
    this.schedule(Math.max(minDelay ?? 0, backoff(attempt - 1, this.o)));
  }

  private schedule(delay: number): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.open(), delay);
  }

  private giveUp(error: SwitchboardClientError): void {
    clearTimeout(this.reconnectTimer);
    for (const e of [...this.outbox]) this.settle(e, error);
    const waiters = this.connectedWaiters;
    this.connectedWaiters = [];
    for (const w of waiters) w.reject(error);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropSocket();
    for (const sub of this.subs.values()) this.disposeSub(sub);
    this.subs.clear();
    this.giveUp(new SwitchboardClientError('CLOSED', 'The client was closed'));
    this.setState({ status: 'offline', instance: undefined });
    this.listeners.clear();
  }

  private whenConnected(timeoutMs: number): Promise<IoSocket> {
    if (this.closed) return Promise.reject(new SwitchboardClientError('CLOSED', 'The client was closed'));
    if (this.socket?.connected && this.current.status === 'connected') return Promise.resolve(this.socket);
    if (this.current.status === 'offline') return Promise.reject(new SwitchboardClientError('OFFLINE', 'The client is offline'));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (s: IoSocket) => {
          clearTimeout(timer);
          resolve(s);
        },
        reject: (e: SwitchboardClientError) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.connectedWaiters = this.connectedWaiters.filter((w) => w !== waiter);
        reject(new SwitchboardClientError('TIMEOUT', 'Not connected in time'));
      }, timeoutMs);
      this.connectedWaiters.push(waiter);
    });
  }

  /** Emits with an acknowledgement; never rejects. */
  private ack<T extends object>(socket: IoSocket, event: keyof ClientToServerEvents, payload: unknown, timeoutMs: number): Promise<AckOutcome<T>> {
    return new Promise((resolve) => {
      const emitter = socket.timeout(Math.max(1, timeoutMs)) as unknown as {
        emit(e: string, p: unknown, cb: (err: Error | null, res: AckResponse<T>) => void): void;
      };
      emitter.emit(event, payload, (err, res) => {
        if (err) resolve({ ok: false, lost: socket.connected ? 'timeout' : 'disconnected' });
        else if (res && res.ok === true) resolve({ ok: true, value: res as T });
        else resolve({ ok: false, error: SwitchboardClientError.fromBody((res as { error?: ErrorBody } | undefined)?.error) });
      });
    });
  }

  // ── subscriptions ─────────────────────────────────────────────────────────────────────────

  subscribe(channelId: string, handlers: SubscriptionHandlers, options: SubscribeOptions = {}): () => void {
    if (this.closed) throw new SwitchboardClientError('CLOSED', 'The client was closed');
    let sub = this.subs.get(channelId);
    if (!sub) {
      const s: Subscription = {
        channelId,
        handlers: new Set(),
        stream: new ChannelStream((m) => this.notify(s, (h) => h.onMessage?.(m)), options.sinceSeq),
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
      sub = s;
      this.subs.set(channelId, s);
      if (this.current.status === 'connected') void this.join(s);
    }
    const entry = { ...handlers };
    sub.handlers.add(entry);
    const s = sub;
    return () => {
      s.handlers.delete(entry);
      if (s.handlers.size > 0 || s.closed) return;
      this.subs.delete(channelId);
      const joined = s.joinedOn === this.connection && this.socket?.connected;
      this.disposeSub(s);
      if (joined) this.socket!.emit('leave_channel', channelId, () => undefined);
    };
  }

  private disposeSub(sub: Subscription): void {
    sub.closed = true;
    sub.joinedOn = -1;
    clearTimeout(sub.gapTimer);
    clearTimeout(sub.retryTimer);
  }

  private notify(sub: Subscription, fn: (h: SubscriptionHandlers) => void): void {
    for (const h of [...sub.handlers]) this.safely(() => fn(h));
  }

  private async join(sub: Subscription): Promise<void> {
    const socket = this.socket;
    if (!socket || sub.closed) return;
    const conn = this.connection;
    clearTimeout(sub.retryTimer);
    const since = sub.stream.delivered;
    const payload: JoinPayload = since === undefined ? sub.channelId : { channelId: sub.channelId, sinceSeq: since };
    const r = await this.ack<JoinResult>(socket, 'join_channel', payload, this.o.requestTimeout);
    if (sub.closed || conn !== this.connection || this.socket !== socket) return;
    if (r.ok) {
      const { lastSeq, missed, hasMore } = r.value;
      const rejoin = sub.everJoined;
      sub.joinedOn = conn;
      sub.everJoined = true;
      sub.joinFailures = 0;
      sub.knownLastSeq = Math.max(sub.knownLastSeq, lastSeq);
      sub.stream.start(lastSeq);
      for (const m of missed ?? []) sub.stream.push(m);
      this.notify(sub, (h) => h.onJoin?.({ channelId: sub.channelId, lastSeq, rejoin }));
      if (hasMore || (sub.stream.delivered ?? 0) < sub.knownLastSeq || sub.stream.hasGap) void this.fill(sub);
      this.flush();
      return;
    }
    if (r.error && !TRANSIENT.has(r.error.code) && r.error.code !== 'RATE_LIMITED') {
      // Refused for good (FORBIDDEN, INVALID_PAYLOAD …): end the subscription and its waiting sends.
      this.subs.delete(sub.channelId);
      this.disposeSub(sub);
      for (const e of [...this.outbox]) if (e.channelId === sub.channelId) this.settle(e, r.error);
      this.notify(sub, (h) => (h.onError ? h.onError(r.error!) : this.o.onError(r.error!)));
      return;
    }
    if (r.error === undefined && r.lost === 'disconnected') return; // the next connection re-joins
    const wait = r.error?.retryAfterMs ?? backoff(sub.joinFailures++, this.o);
    sub.retryTimer = setTimeout(() => {
      if (conn === this.connection && this.socket === socket) void this.join(sub);
    }, wait);
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

  /** Fetches everything after the last delivered seq until the server says there is no more. */
  private async fill(sub: Subscription): Promise<void> {
    if (sub.filling) {
      sub.fillAgain = true;
      return;
    }
    sub.filling = true;
    clearTimeout(sub.gapTimer);
    sub.gapTimer = undefined;
    let failures = 0;
    try {
      do {
        sub.fillAgain = false;
        for (;;) {
          const socket = this.socket;
          const conn = this.connection;
          const after = sub.stream.delivered;
          if (sub.closed || !socket || sub.joinedOn !== conn || after === undefined) return;
          const r = await this.ack<HistoryResult>(socket, 'history', { channelId: sub.channelId, afterSeq: after, limit: 200 }, this.o.requestTimeout);
          if (sub.closed || conn !== this.connection) return;
          if (!r.ok) {
            if (r.error === undefined && r.lost === 'disconnected') return;
            if (r.error && !TRANSIENT.has(r.error.code) && r.error.code !== 'RATE_LIMITED') {
              this.o.onError(r.error);
              return;
            }
            await new Promise((res) => setTimeout(res, r.error?.retryAfterMs ?? backoff(failures++, this.o)));
            continue;
          }
          for (const m of r.value.messages) {
            sub.knownLastSeq = Math.max(sub.knownLastSeq, m.seq);
            sub.stream.push(m);
          }
          if (r.value.hasMore) continue;
          // Nothing newer exists: whatever still waits behind a gap cannot be completed.
          if (sub.stream.hasGap) sub.stream.skipGap();
          break;
        }
      } while (sub.fillAgain);
    } finally {
      sub.filling = false;
    }
    this.watchGap(sub);
  }

  // ── sending ───────────────────────────────────────────────────────────────────────────────

  send(channelId: string, content: string): Promise<Message> {
    if (this.closed) return Promise.reject(new SwitchboardClientError('CLOSED', 'The client was closed'));
    if (this.current.status === 'offline') return Promise.reject(new SwitchboardClientError('OFFLINE', 'The client is offline'));
    return new Promise<Message>((resolve, reject) => {
      const e: Outgoing = {
        channelId,
        content,
        clientMessageId: newId(),
        resolve,
        reject,
        state: 'queued',
        failures: 0,
        rateLimited: 0,
        deadline: undefined,
        retry: undefined,
      };
      e.deadline = setTimeout(
        () => this.settle(e, new SwitchboardClientError('TIMEOUT', `No acknowledgement within ${this.o.sendTimeout} ms; the message may still have been stored`)),
        this.o.sendTimeout,
      );
      this.outbox.push(e);
      this.flush();
    });
  }

  /** Sends every queued message whose channel is joined on this connection (or not subscribed at all). */
  private flush(): void {
    const socket = this.socket;
    if (!socket?.connected || this.current.status !== 'connected') return;
    for (const e of this.outbox) {
      if (e.state !== 'queued') continue;
      const sub = this.subs.get(e.channelId);
      if (sub && sub.joinedOn !== this.connection) continue;
      void this.transmit(e, socket);
    }
  }

  private async transmit(e: Outgoing, socket: IoSocket): Promise<void> {
    e.state = 'inflight';
    const conn = this.connection;
    const r = await this.ack<SendResult>(socket, 'send_message', { channelId: e.channelId, content: e.content, clientMessageId: e.clientMessageId }, this.o.ackTimeout);
    if (e.state !== 'inflight') return;
    if (r.ok) {
      const sub = this.subs.get(e.channelId);
      // The ack carries the stored message: it fills the stream even if its broadcast is lost.
      if (sub?.joinedOn === this.connection) this.receive(r.value.message);
      this.settle(e, undefined, r.value.message);
      return;
    }
    const { error } = r;
    if (error === undefined) {
      // No answer: the connection dropped (resend after reconnect) or the server is slow (resend here).
      if (r.lost === 'disconnected' || conn !== this.connection) return this.requeue(e, 0);
      return this.requeue(e, backoff(e.failures++, this.o));
    }
    if (error.code === 'RATE_LIMITED' && e.rateLimited < this.o.maxRateLimitRetries) {
      e.rateLimited++;
      return this.requeue(e, (error.retryAfterMs ?? 1000) + Math.random() * 100);
    }
    if (TRANSIENT.has(error.code)) return this.requeue(e, backoff(e.failures++, this.o));
    if (error.code === 'UNAUTHENTICATED') {
      this.tokenStale = true;
      return this.requeue(e, 0);
    }
    this.settle(e, error);
  }

  private requeue(e: Outgoing, delay: number): void {
    if (delay <= 0) {
      e.state = 'queued';
      this.flush();
      return;
    }
    e.state = 'waiting';
    e.retry = setTimeout(() => {
      if (e.state !== 'waiting') return;
      e.state = 'queued';
      this.flush();
    }, delay);
  }

  private settle(e: Outgoing, error: SwitchboardClientError | undefined, message?: Message): void {
    if (e.state === 'done') return;
    e.state = 'done';
    clearTimeout(e.deadline);
    clearTimeout(e.retry);
    const i = this.outbox.indexOf(e);
    if (i >= 0) this.outbox.splice(i, 1);
    if (error) e.reject(error);
    else e.resolve(message!);
  }

  // ── requests ──────────────────────────────────────────────────────────────────────────────

  typing(channelId: string): boolean {
    const now = Date.now();
    if (now - (this.lastTyping.get(channelId) ?? -Infinity) < this.o.typingInterval) return false;
    const sub = this.subs.get(channelId);
    if (!this.socket?.connected || (sub && sub.joinedOn !== this.connection)) return false;
    this.lastTyping.set(channelId, now);
    this.socket.emit('typing', { channelId }, () => undefined);
    return true;
  }

  async presence(channelId: string): Promise<PresenceUser[]> {
    const r = await this.request<{ users: PresenceUser[] }>('presence', { channelId });
    return r.users;
  }

  async history(query: HistoryPayload): Promise<HistoryResult> {
    const r = await this.request<HistoryResult>('history', query);
    return { messages: r.messages, hasMore: r.hasMore };
  }

  /** One request, waiting for a connection and retried over reconnects until `requestTimeout`. */
  private async request<T extends object>(event: 'presence' | 'history', payload: unknown): Promise<T> {
    const deadline = Date.now() + this.o.requestTimeout;
    let failures = 0;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new SwitchboardClientError('TIMEOUT', `${event}: no answer within ${this.o.requestTimeout} ms`);
      const socket = await this.whenConnected(left);
      const r = await this.ack<T>(socket, event, payload, left);
      if (r.ok) return r.value;
      if (this.closed) throw new SwitchboardClientError('CLOSED', 'The client was closed');
      if (r.error && !TRANSIENT.has(r.error.code)) throw r.error;
      if (r.error) await new Promise((res) => setTimeout(res, Math.min(backoff(failures++, this.o), Math.max(0, deadline - Date.now()))));
      else if (r.lost === 'timeout') throw new SwitchboardClientError('TIMEOUT', `${event}: no answer within ${this.o.requestTimeout} ms`);
    }
  }
}
