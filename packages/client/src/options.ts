import type { ManagerOptions, SocketOptions } from 'socket.io-client';

/** Why `getToken` is being called. */
export interface TokenContext {
  /**
   * - `connect`: the first connection attempt;
   * - `reconnect`: a later attempt (a cached token that is still valid is fine);
   * - `expired`: the server refused or ended the session with "Invalid or expired token" /
   *   `UNAUTHENTICATED`: return a fresh token, not the cached one.
   */
  reason: 'connect' | 'reconnect' | 'expired';
  /** Failed attempts since the last successful connection. */
  attempt: number;
}

export interface ClientOptions {
  /**
   * Where to connect (the server's base URL; the Socket.IO path is `path`).
   * - a string: one address, normally a load balancer's;
   * - a list: the first connection uses the first entry and every later attempt the next one,
   *   wrapping around, so a client whose instance died or is draining reaches another (what a
   *   load balancer does for you in production);
   * - a function: called for every attempt.
   */
  url: string | readonly string[] | (() => string);
  /** Returns the JWT for the handshake. Called for every connection attempt. */
  getToken: (context: TokenContext) => string | Promise<string>;
  /** First reconnection delay, ms; doubles each failed attempt. @default 1000 */
  reconnectionDelay: number;
  /** Ceiling of the reconnection delay, ms. @default 10000 */
  reconnectionDelayMax: number;
  /** Random spread of each delay: 0.5 means ±50 %, so clients do not all come back at once. @default 0.5 */
  randomizationFactor: number;
  /** Failed attempts in a row before the client gives up and goes `offline`. @default Infinity */
  reconnectionAttempts: number;
  /** Time one connection attempt may take, ms. @default 10000 */
  connectTimeout: number;
  /** Overall limit of one `send()`, ms: offline waiting and every retry included. @default 30000 */
  sendTimeout: number;
  /** Time to wait for the server's acknowledgement of one attempt before sending again, ms. @default 10000 */
  ackTimeout: number;
  /** Overall limit of `history()` / `presence()` and of each internal join or catch-up request, ms. @default 10000 */
  requestTimeout: number;
  /** `RATE_LIMITED` answers one `send()` waits out (for `retryAfterMs` each) before it rejects. @default 3 */
  maxRateLimitRetries: number;
  /**
   * How long a seq gap may stay open before the missing messages are fetched with `history`, ms.
   * Messages stored by different instances can overtake each other by a few milliseconds.
   * @default 250
   */
  gapFillDelay: number;
  /** Random extra delay added to `server_shutdown`'s `reconnectDelay`, ms. @default 500 */
  shutdownJitter: number;
  /** Least time between two `typing` signals for one channel, ms. @default 1000 */
  typingInterval: number;
  /** Ask the server for batched `new_messages` frames (`auth.batch`). @default true */
  batch: boolean;
  /** Engine.IO transports, in order of preference. @default ['websocket', 'polling'] */
  transports: ('websocket' | 'polling' | 'webtransport')[];
  /** Socket.IO path on the server. @default '/socket.io/' */
  path: string;
  /**
   * Errors no promise can carry: a subscription whose join was refused, a handler that threw.
   * @default console.warn
   */
  onError: (error: Error) => void;
  /** Extra socket.io-client options for each connection (advanced; reconnection stays off: the SDK reconnects). @default {} */
  socketOptions: Partial<ManagerOptions & SocketOptions>;
}

/** What `createClient` takes: `url` and `getToken`, and any of the rest. */
export type CreateClientOptions = Pick<ClientOptions, 'url' | 'getToken'> & Partial<Omit<ClientOptions, 'url' | 'getToken'>>;

export const DEFAULT_OPTIONS: Readonly<Omit<ClientOptions, 'url' | 'getToken'>> = Object.freeze({
  reconnectionDelay: 1000,
  reconnectionDelayMax: 10_000,
  randomizationFactor: 0.5,
  reconnectionAttempts: Infinity,
  connectTimeout: 10_000,
  sendTimeout: 30_000,
  ackTimeout: 10_000,
  requestTimeout: 10_000,
  maxRateLimitRetries: 3,
  gapFillDelay: 250,
  shutdownJitter: 500,
  typingInterval: 1000,
  batch: true,
  transports: ['websocket', 'polling'] as ClientOptions['transports'],
  path: '/socket.io/',
  onError: (error: Error) => console.warn('[switchboard]', error),
  socketOptions: {},
});

/** The delay before reconnection attempt `attempt` (0-based): exponential, capped, randomized. */
export function backoff(attempt: number, o: Pick<ClientOptions, 'reconnectionDelay' | 'reconnectionDelayMax' | 'randomizationFactor'>): number {
  const base = Math.min(o.reconnectionDelayMax, o.reconnectionDelay * 2 ** Math.min(attempt, 30));
  const spread = base * Math.min(Math.max(o.randomizationFactor, 0), 1);
  return Math.round(Math.min(o.reconnectionDelayMax, base - spread + Math.random() * 2 * spread));
}
