import { isRetryable } from './protocol/errors.js';
import type { HistoryPayload, HistoryResult, Message, PresenceResult, PresenceUser, SendResult } from './protocol/events.js';
import type { Connection } from './connection.js';
import { ack, type AckEmit, type IoSocket, type Timer } from './socket.js';
import { closedError, SwitchboardClientError } from './errors.js';
import type { ClientOptions } from './options.js';
import { retryDelay, sleep } from './retry.js';

/** The slice of the subscriptions the outbox needs. */
export interface ChannelGate {
  /** Whether the channel's sends may go now (joined on this connection, or not subscribed). */
  ready(channelId: string): boolean;
  /** A stored message from a send's acknowledgement. */
  deliver(message: Message): void;
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

export interface SendOptions {
  /**
   * The id the message is stored under (1-64 characters); the server stores one message per
   * channel, sender and id. Pass the id of an earlier `send()` that rejected (`TIMEOUT`, `OFFLINE`,
   * `CLOSED`: it may have been stored) to try it again without storing it twice.
   * @default a new `newId()`
   */
  clientMessageId?: string;
}

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
 * Everything the client sends. Guarantees: a `send()` keeps one clientMessageId over all its
 * attempts, so the server stores it once; it waits while offline and until its channel is joined on
 * the current connection; a lost answer or a retryable error (`isRetryable`) sends it again after
 * `retryDelay` (RATE_LIMITED at most `maxRateLimitRetries` times), an expired token after the
 * reconnect; it settles exactly once, within `sendTimeout`; and the stored message from its
 * acknowledgement enters the channel's stream, so a lost broadcast leaves no gap. A request
 * (`history`, `presence`) waits for a connection and is retried the same way within `requestTimeout`.
 */
export class Outbox {
  private readonly queue: Outgoing[] = [];
  private readonly lastTyping = new Map<string, number>();

  constructor(
    private readonly link: Connection,
    private readonly channels: ChannelGate,
    private readonly o: ClientOptions,
  ) {}

  send(channelId: string, content: string, options: SendOptions = {}): Promise<Message> {
    if (this.link.closed) return Promise.reject(closedError());
    if (this.link.state.status === 'offline') return Promise.reject(new SwitchboardClientError('OFFLINE', 'The client is offline'));
    return new Promise<Message>((resolve, reject) => {
      const e: Outgoing = {
        channelId,
        content,
        clientMessageId: options.clientMessageId ?? newId(),
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
      this.queue.push(e);
      this.flush();
    });
  }

  /** Sends every queued message whose channel is ready, if the connection is up. */
  flush(): void {
    const socket = this.link.live;
    if (!socket) return;
    for (const e of this.queue) if (e.state === 'queued' && this.channels.ready(e.channelId)) void this.transmit(e, socket);
  }

  /** Rejects the waiting sends of `channelId` (all of them without one) with `error`. */
  fail(error: SwitchboardClientError, channelId?: string): void {
    for (const e of [...this.queue]) if (channelId === undefined || e.channelId === channelId) this.settle(e, error);
  }

  typing(channelId: string): boolean {
    const now = Date.now();
    if (now - (this.lastTyping.get(channelId) ?? -Infinity) < this.o.typingInterval) return false;
    const socket = this.link.socket;
    if (!socket?.connected || !this.channels.ready(channelId)) return false;
    this.lastTyping.set(channelId, now);
    socket.emit('typing', { channelId }, () => undefined);
    return true;
  }

  async presence(channelId: string): Promise<PresenceUser[]> {
    const r = await this.request<PresenceResult>('presence', (s, done) => s.emit('presence', { channelId }, done));
    return r.users;
  }

  async history(query: HistoryPayload): Promise<HistoryResult> {
    const r = await this.request<HistoryResult>('history', (s, done) => s.emit('history', query, done));
    return { messages: r.messages, hasMore: r.hasMore };
  }

  private async transmit(e: Outgoing, socket: IoSocket): Promise<void> {
    e.state = 'inflight';
    const conn = this.link.epoch;
    const { channelId, content, clientMessageId } = e;
    const r = await ack<SendResult>(socket, this.o.ackTimeout, (s, done) => s.emit('send_message', { channelId, content, clientMessageId }, done));
    if (e.state !== 'inflight') return;
    if (r.ok) {
      // The ack carries the stored message: it fills the stream even if its broadcast is lost.
      this.channels.deliver(r.value.message);
      return this.settle(e, undefined, r.value.message);
    }
    const { error } = r;
    if (error === undefined) {
      // No answer: the connection dropped (resend after reconnect) or the server is slow (resend here).
      return this.requeue(e, r.lost === 'disconnected' || conn !== this.link.epoch ? 0 : retryDelay(undefined, e.failures++, this.o));
    }
    if (error.code === 'UNAUTHENTICATED') {
      // The token expired and the server ends the session: resend on the next connection, with a fresh token.
      this.link.tokenExpired();
      return this.requeue(e, 0);
    }
    const rateLimitsLeft = error.code !== 'RATE_LIMITED' || e.rateLimited++ < this.o.maxRateLimitRetries;
    if (!isRetryable(error.code) || !rateLimitsLeft) return this.settle(e, error);
    this.requeue(e, retryDelay(error, e.failures++, this.o));
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
    const i = this.queue.indexOf(e);
    if (i >= 0) this.queue.splice(i, 1);
    if (error) e.reject(error);
    else e.resolve(message!);
  }

  /**
   * One request, waiting for a connection, retried over reconnects and retryable errors. Rejects
   * with `TIMEOUT` when `requestTimeout` passes without an answer, and with the server's error when
   * it is not retryable or the wait it asks for would end after `requestTimeout`.
   */
  private async request<T extends object>(event: 'presence' | 'history', emit: AckEmit<T>): Promise<T> {
    const deadline = Date.now() + this.o.requestTimeout;
    const timeout = () => new SwitchboardClientError('TIMEOUT', `${event}: no answer within ${this.o.requestTimeout} ms`);
    let failures = 0;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw timeout();
      const r = await ack<T>(await this.link.whenConnected(left), left, emit);
      if (r.ok) return r.value;
      if (this.link.closed) throw closedError();
      if (r.error === undefined) {
        if (r.lost === 'timeout') throw timeout();
        continue; // disconnected: ask again on the next connection
      }
      if (!isRetryable(r.error.code)) throw r.error;
      const wait = retryDelay(r.error, failures++, this.o);
      if (wait >= deadline - Date.now()) throw r.error;
      await sleep(wait);
    }
  }
}
