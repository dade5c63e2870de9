import type { HistoryPayload, HistoryResult, Message, PresenceUser } from './protocol/events.js';
import { Connection, type ConnectionState } from './connection.js';
import { DEFAULT_OPTIONS, type ClientOptions, type CreateClientOptions } from './options.js';
import { Outbox, type SendOptions } from './outbox.js';
import { Subscriptions, type SubscribeOptions, type SubscriptionHandlers } from './subscriptions.js';

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
   *
   * @example
   * const clientMessageId = newId();
   * client.send('general', text, { clientMessageId }).catch(() => showRetry());
   * // the "Retry" button: the same id, so the message is stored once however often it is tried
   * const retry = () => client.send('general', text, { clientMessageId });
   */
  send(channelId: string, content: string, options?: SendOptions): Promise<Message>;
  /** Tells the channel's other members this user is typing; at most one signal per `typingInterval`. Returns whether one was sent. */
  typing(channelId: string): boolean;
  /** Who is in the channel, across all instances. */
  presence(channelId: string): Promise<PresenceUser[]>;
  /** A page of stored messages, oldest first (see the protocol's `history`). */
  history(query: HistoryPayload): Promise<HistoryResult>;
  /**
   * Makes the connection attempt that waits for its backoff (`state.nextAttemptAt`) now, as a
   * "Retry now" button does; returns whether one was waiting.
   */
  reconnectNow(): boolean;
  /** Disconnects for good; pending sends and requests reject with `CLOSED`. */
  close(): void;
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

/** The three units wired together: the connection drives the subscriptions, which gate the outbox. */
class Client implements SwitchboardClient {
  private readonly link: Connection;
  private readonly subs: Subscriptions;
  private readonly outbox: Outbox;

  constructor(o: ClientOptions) {
    this.link = new Connection(o, {
      listen: (socket, current) => this.subs.listen(socket, current),
      connected: () => {
        this.subs.rejoinAll();
        this.outbox.flush();
      },
      lost: () => this.subs.connectionLost(),
      gaveUp: (error) => this.outbox.fail(error),
    });
    this.subs = new Subscriptions(this.link, o, {
      joined: () => this.outbox.flush(),
      refused: (channelId, error) => this.outbox.fail(error, channelId),
    });
    this.outbox = new Outbox(this.link, this.subs, o);
    this.link.start();
  }

  get state(): Readonly<ConnectionState> {
    return this.link.state;
  }

  onStateChange(listener: (state: Readonly<ConnectionState>) => void): () => void {
    return this.link.onStateChange(listener);
  }

  subscribe(channelId: string, handlers: SubscriptionHandlers, options?: SubscribeOptions): () => void {
    return this.subs.subscribe(channelId, handlers, options);
  }

  send(channelId: string, content: string, options?: SendOptions): Promise<Message> {
    return this.outbox.send(channelId, content, options);
  }

  typing(channelId: string): boolean {
    return this.outbox.typing(channelId);
  }

  presence(channelId: string): Promise<PresenceUser[]> {
    return this.outbox.presence(channelId);
  }

  history(query: HistoryPayload): Promise<HistoryResult> {
    return this.outbox.history(query);
  }

  reconnectNow(): boolean {
    return this.link.reconnectNow();
  }

  close(): void {
    this.subs.closeAll();
    this.link.close();
  }
}
