import { io } from 'socket.io-client';
import { AUTH_INVALID, AUTH_REQUIRED } from './protocol/errors.js';
import { callSafely, closedError, SwitchboardClientError } from './errors.js';
import { backoff, type ClientOptions } from './options.js';
import type { IoSocket, Timer } from './socket.js';

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
  /**
   * When the next connection attempt is due (ms since the epoch, as `Date.now()`), while one waits
   * for its backoff; `undefined` while connected, while an attempt is under way, and when `offline`.
   */
  nextAttemptAt: number | undefined;
  /** Set while the serving instance drains: it sent `server_shutdown` and the client leaves it soon. */
  draining: DrainNotice | undefined;
}

/** The serving instance's `server_shutdown` notice, and when the client will leave that instance. */
export interface DrainNotice {
  /** The server's words. */
  message: string;
  /** The server's `reconnectDelay`, ms. */
  reconnectDelay: number;
  /** When the client leaves (ms since the epoch): after `reconnectDelay` plus up to `shutdownJitter`. */
  leaveAt: number;
}

/** What the connection tells the units built on it. */
export interface ConnectionHooks {
  /** A socket was opened: add its channel-event listeners; `current()` turns false once it is replaced. */
  listen(socket: IoSocket, current: () => boolean): void;
  /** The connection is up (a new `epoch`). */
  connected(): void;
  /** The connection ended; another attempt is scheduled. */
  lost(): void;
  /** No connection will come: `close()` was called or `reconnectionAttempts` ran out. */
  gaveUp(error: SwitchboardClientError): void;
}

type ConnectError = Error & { data?: { code?: string; retryAfterMs?: number } };

/**
 * The SDK's own reconnection loop over socket.io-client (whose loop is off: it would neither retry a
 * server's disconnect nor change address or token between attempts). Guarantees: at most one socket
 * at a time, and nothing from a replaced socket reaches the hooks; every attempt asks `getToken`
 * (reason `expired` after an authentication refusal); failed attempts back off, a `RATE_LIMITED`
 * refusal waits its `retryAfterMs`, and after `reconnectionAttempts` failures in a row the state is
 * `offline` for good; on `server_shutdown` the client leaves after `reconnectDelay` plus jitter.
 */
export class Connection {
  private sock: IoSocket | undefined;
  private connections = 0;
  private isClosed = false;
  private attemptsMade = 0;
  private everConnected = false;
  private tokenStale = false;
  private reconnectTimer: Timer | undefined;
  private shutdownTimer: Timer | undefined;
  private current: ConnectionState = {
    status: 'connecting',
    url: undefined,
    instance: undefined,
    attempt: 0,
    lastError: undefined,
    nextAttemptAt: undefined,
    draining: undefined,
  };
  private readonly listeners = new Set<(s: Readonly<ConnectionState>) => void>();
  private waiters: { resolve: (s: IoSocket) => void; reject: (e: SwitchboardClientError) => void }[] = [];

  constructor(
    private readonly o: ClientOptions,
    private readonly hooks: ConnectionHooks,
  ) {}

  /** Makes the first attempt. */
  start(): void {
    void this.open();
  }

  /** Increases with every successful connection; a callback from an older one compares against it. */
  get epoch(): number {
    return this.connections;
  }

  /** `close()` was called. */
  get closed(): boolean {
    return this.isClosed;
  }

  get state(): Readonly<ConnectionState> {
    return this.current;
  }

  /** The current socket, connected or not yet. */
  get socket(): IoSocket | undefined {
    return this.sock;
  }

  /** The socket, when it is connected and the state says so. */
  get live(): IoSocket | undefined {
    return this.sock?.connected && this.current.status === 'connected' ? this.sock : undefined;
  }

  onStateChange(listener: (state: Readonly<ConnectionState>) => void): () => void {
    this.listeners.add(listener);
    listener(this.current);
    return () => this.listeners.delete(listener);
  }

  /** The server refused the session's token: the next attempt asks `getToken` for a fresh one. */
  tokenExpired(): void {
    this.tokenStale = true;
  }

  /** Resolves with the live socket, at once or when the next connection is up. */
  whenConnected(timeoutMs: number): Promise<IoSocket> {
    if (this.closed) return Promise.reject(closedError());
    const live = this.live;
    if (live) return Promise.resolve(live);
    if (this.current.status === 'offline') return Promise.reject(new SwitchboardClientError('OFFLINE', 'The client is offline'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new SwitchboardClientError('TIMEOUT', 'Not connected in time'));
      }, timeoutMs);
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
      this.waiters.push(waiter);
    });
  }

  /**
   * Makes the waiting connection attempt now instead of after its backoff; returns whether there
   * was one to make (none while connected, while an attempt is under way, or after `close()`).
   */
  reconnectNow(): boolean {
    if (this.closed || this.sock || this.reconnectTimer === undefined) return false;
    void this.open();
    return true;
  }

  /** Disconnects for good; the hooks hear `gaveUp` with `CLOSED`. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.dropSocket();
    this.giveUp(closedError());
    this.setState({ status: 'offline', instance: undefined, nextAttemptAt: undefined, draining: undefined });
    this.listeners.clear();
  }

  private setState(patch: Partial<ConnectionState>): void {
    const next = { ...this.current, ...patch };
    const keys = Object.keys(next) as (keyof ConnectionState)[];
    if (keys.every((k) => next[k] === this.current[k])) return;
    this.current = Object.freeze(next);
    for (const l of [...this.listeners]) callSafely(this.o.onError, () => l(this.current));
  }

  private nextUrl(): string {
    const u = this.o.url;
    const n = this.attemptsMade++;
    if (typeof u === 'string') return u;
    if (typeof u === 'function') return u();
    return u[n % u.length]!;
  }

  private async open(): Promise<void> {
    if (this.closed || this.sock) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.setState({ nextAttemptAt: undefined });
    const reason = this.tokenStale ? 'expired' : this.everConnected || this.current.attempt > 0 ? 'reconnect' : 'connect';
    let token: string;
    try {
      token = await this.o.getToken({ reason, attempt: this.current.attempt });
    } catch (err) {
      if (this.closed) return;
      return this.attemptFailed(new SwitchboardClientError('UNAUTHENTICATED', `getToken failed: ${(err as Error)?.message ?? String(err)}`, { cause: err }));
    }
    if (this.closed || this.sock) return;
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
    this.sock = socket;
    this.listen(socket);
  }

  private listen(socket: IoSocket): void {
    const mine = () => this.sock === socket;
    socket.on('connect', () => mine() && this.connected(socket));
    socket.on('connect_error', (err: ConnectError) => mine() && this.refused(err));
    socket.on('disconnect', (reason) => {
      if (!mine()) return;
      this.dropSocket();
      this.connectionLost(new SwitchboardClientError('UNAVAILABLE', `Disconnected: ${reason}`));
    });
    socket.on('server_shutdown', (notice) => mine() && this.leaveLater(socket, notice));
    socket.on('error', (e) => {
      // The server ends the session right after this (token expired): fetch a fresh token for the next attempt.
      if (mine() && e?.code === 'UNAUTHENTICATED') this.tokenStale = true;
    });
    socket.on('joined', (e) => mine() && this.setState({ instance: e.instance }));
    this.hooks.listen(socket, mine);
  }

  private connected(socket: IoSocket): void {
    this.connections++;
    this.everConnected = true;
    this.setState({ status: 'connected', instance: undefined, attempt: 0, lastError: undefined, draining: undefined });
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve(socket);
    this.hooks.connected();
  }

  private refused(err: ConnectError): void {
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
  }

  private leaveLater(socket: IoSocket, notice: { message: string; reconnectDelay: number }): void {
    const reconnectDelay = Math.max(0, Number(notice.reconnectDelay) || 0);
    const wait = reconnectDelay + Math.random() * this.o.shutdownJitter;
    this.setState({ draining: { message: notice.message, reconnectDelay, leaveAt: Date.now() + wait } });
    clearTimeout(this.shutdownTimer);
    this.shutdownTimer = setTimeout(() => {
      if (this.sock !== socket) return;
      // Leave the draining instance ourselves (socket.io-client would not come back after the
      // server's own disconnect) and go straight to the next address.
      this.dropSocket();
      this.connectionLost(new SwitchboardClientError('UNAVAILABLE', 'The instance is shutting down'));
    }, wait);
  }

  /** Forgets the current socket and closes it; its pending acks fail and their owners retry. */
  private dropSocket(): void {
    const socket = this.sock;
    if (!socket) return;
    this.sock = undefined;
    clearTimeout(this.shutdownTimer);
    this.shutdownTimer = undefined;
    socket.removeAllListeners();
    socket.close();
  }

  private connectionLost(error: SwitchboardClientError): void {
    if (this.closed) return;
    // A shutdown notice fixes when to come back; otherwise the first backoff step.
    const planned = this.current.draining?.leaveAt;
    this.hooks.lost();
    this.setState({ status: 'reconnecting', instance: undefined, attempt: 0, lastError: error, draining: undefined });
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
    this.setState({ nextAttemptAt: Date.now() + delay });
  }

  private giveUp(error: SwitchboardClientError): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.hooks.gaveUp(error);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(error);
  }
}
