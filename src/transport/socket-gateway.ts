import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Config } from '../config.js';
import { Chat, type Session } from '../core/chat.js';
import type { Metrics } from '../metrics.js';
import { AUTH_INVALID, AUTH_REQUIRED, ErrorCode, SwitchboardError, type ErrorBody, EVENT_NAMES, type ClientEventName, type SocketData, createSchemas, describeIssues, isTooLarge } from 'switchboard-client/protocol';
import type { Authenticator } from '../ports/authenticator.js';
import { AuthError } from '../ports/authenticator.js';
import { channelOfRoom, channelRoom, memberRooms, userRoom } from './rooms.js';
import { capOutgoing } from './slow-consumer.js';
import type { IoServer, IoSocket } from './types.js';

export interface GatewayDeps {
  io: IoServer;
  chat: Chat;
  auth: Authenticator;
  config: Pick<Config, 'instanceId' | 'maxMessageLength' | 'limits'>;
  metrics: Metrics;
  logger: Logger;
}

type Ack = (response: unknown) => void;

const KNOWN_EVENTS = new Set<string>(EVENT_NAMES);

/** Reads the bearer token of a handshake: `auth.token`, else the Authorization header. */
export function handshakeToken(handshake: { auth: Record<string, unknown>; headers: Record<string, string | string[] | undefined> }): string | undefined {
  const fromAuth = handshake.auth?.['token'];
  if (typeof fromAuth === 'string' && fromAuth.length > 0) return fromAuth;
  const header = handshake.headers['authorization'];
  const value = Array.isArray(header) ? header[0] : header;
  const match = value ? /^Bearer\s+(\S+)\s*$/i.exec(value) : null;
  return match?.[1];
}

function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof SwitchboardError) return err.toBody();
  return { code: ErrorCode.INTERNAL, message: 'Internal error' };
}

/**
 * Socket.IO ↔ core: authenticates handshakes, validates every event, calls the chat rules and
 * answers with an ack (or an `error` event when the client gave no callback). A bad event never
 * disconnects the socket; only an expired token or a client that ignores rate limits does.
 */
export class SocketGateway {
  private readonly io: IoServer;
  private readonly chat: Chat;
  private readonly auth: Authenticator;
  private readonly config: GatewayDeps['config'];
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly schemas: ReturnType<typeof createSchemas>;
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];
  /** Connections per user on this instance. */
  private readonly userConnections = new Map<string, number>();
  /** Per socket on this instance: its user and the channels it is counted in presence for. */
  private readonly counted = new Map<string, { userId: string; channels: Set<string> }>();

  constructor(deps: GatewayDeps) {
    this.io = deps.io;
    this.chat = deps.chat;
    this.auth = deps.auth;
    this.config = deps.config;
    this.metrics = deps.metrics;
    this.log = deps.logger;
    this.schemas = createSchemas({ maxMessageLength: deps.config.maxMessageLength });
    this.io.use((socket, next) => void this.authenticate(socket as IoSocket, next));
    this.io.on('connection', (socket) => this.onConnection(socket));
    // Presence follows the room however a socket leaves it: leave_channel, a disconnect, or an admin's
    // revoke (socketsLeave, possibly relayed from another instance). app.ts installs the cluster
    // adapter before it builds the gateway, so this is the adapter in use.
    this.io.of('/').adapter.on('leave-room', (room: string, socketId: string) => this.onLeaveRoom(room, socketId));
  }

  /** Events being handled right now (the drain waits for zero). */
  get eventsInFlight(): number {
    return this.inFlight;
  }

  /** Resolves when no event handler is running. */
  idle(): Promise<void> {
    return this.inFlight === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async authenticate(socket: IoSocket, next: (err?: Error) => void): Promise<void> {
    const refuse = (message: string, reason: string) => {
      this.metrics.handshakeRefusals.inc({ reason });
      this.log.info({ reason, address: socket.handshake.address }, 'connection refused');
      const err = new Error(message) as Error & { data?: unknown };
      err.data = { code: ErrorCode.UNAUTHENTICATED };
      next(err);
    };
    const token = handshakeToken(socket.handshake);
    if (!token) return refuse(AUTH_REQUIRED, 'no_token');
    try {
      const p = await this.auth.verify(token);
      const count = this.userConnections.get(p.userId) ?? 0;
      if (count >= this.config.limits.connectionsPerUser) {
        this.metrics.handshakeRefusals.inc({ reason: 'too_many_connections' });
        this.log.info({ userId: p.userId, count }, 'connection refused: too many connections for this user');
        const err = new Error(`Too many connections for this user (limit ${this.config.limits.connectionsPerUser})`) as Error & { data?: unknown };
        err.data = { code: ErrorCode.RATE_LIMITED, retryAfterMs: 5000 };
        return next(err);
      }
      const data: SocketData = {
        userId: p.userId,
        name: p.name,
        isAdmin: p.isAdmin,
        grants: new Set(p.channels),
        expiresAt: p.expiresAt,
        batch: socket.handshake.auth?.['batch'] === true,
      };
      socket.data = data;
      next();
    } catch (err) {
      if (err instanceof AuthError) return refuse(AUTH_INVALID, err.message.slice(0, 120));
      this.log.error({ err }, 'authentication failed unexpectedly');
      return refuse(AUTH_INVALID, 'verifier_error');
    }
  }

  private onLeaveRoom(room: string, socketId: string): void {
    const channelId = channelOfRoom(room);
    const entry = channelId === undefined ? undefined : this.counted.get(socketId);
    if (channelId === undefined || !entry?.channels.delete(channelId)) return;
    const { userId } = entry;
    void this.chat.disconnected(channelId, userId).then((last) => {
      if (last) this.io.to(channelRoom(channelId)).emit('user_left', { userId, channelId, timestamp: new Date().toISOString() });
    });
  }

  private onConnection(socket: IoSocket): void {
    const { userId } = socket.data;
    this.metrics.connections.inc();
    this.metrics.connectionsTotal.inc();
    this.userConnections.set(userId, (this.userConnections.get(userId) ?? 0) + 1);
    this.counted.set(socket.id, { userId, channels: new Set() });
    void socket.join(userRoom(userId));
    this.log.info({ socketId: socket.id, userId, transport: socket.conn.transport.name }, 'connected');

    const principal = {
      userId,
      name: socket.data.name,
      isAdmin: socket.data.isAdmin,
      channels: [...socket.data.grants],
      expiresAt: socket.data.expiresAt,
    };
    const session: Session = { principal, isJoined: (channelId) => socket.rooms.has(channelRoom(channelId)) };

    // A token that expires mid-session ends the session; the client reconnects with a fresh one.
    // Timers cap at 2^31-1 ms (~24.8 days): a longer-lived token re-arms instead of firing early.
    let expiry: NodeJS.Timeout;
    const armExpiry = () => {
      const left = socket.data.expiresAt - Date.now();
      if (left <= 0) return this.expire(socket);
      expiry = setTimeout(armExpiry, Math.min(left, 2 ** 31 - 1));
      expiry.unref();
    };
    armExpiry();

    this.installEventLimit(socket);
    capOutgoing(socket, { maxBytes: this.config.limits.outgoingBytes, maxPackets: this.config.limits.outgoingPackets }, { metrics: this.metrics, logger: this.log });
    socket.onAny((event: unknown, ...args: unknown[]) => {
      if (typeof event === 'string' && KNOWN_EVENTS.has(event)) return;
      const ack = typeof args.at(-1) === 'function' ? (args.at(-1) as Ack) : undefined;
      this.fail(socket, String(event).slice(0, 64), new SwitchboardError(ErrorCode.INVALID_PAYLOAD, 'Unknown event'), ack);
    });

    this.on(socket, 'join_channel', this.schemas.joinChannel, async (payload) => {
      const { channelId, sinceSeq } = typeof payload === 'string' ? { channelId: payload, sinceSeq: undefined } : payload;
      return this.join(socket, session, channelId, sinceSeq);
    });
    this.on(socket, 'leave_channel', this.schemas.leaveChannel, async (payload) => {
      const channelId = typeof payload === 'string' ? payload : payload.channelId;
      const room = channelRoom(channelId);
      if (!socket.rooms.has(room)) throw new SwitchboardError(ErrorCode.FORBIDDEN, 'Not joined to this channel');
      await socket.leave(room);
      for (const r of memberRooms(channelId, socket.data.batch)) if (r !== room) await socket.leave(r);
      socket.emit('left', { channelId });
      // Presence and user_left follow from leaving the room (onLeaveRoom).
      return { channelId };
    });
    this.on(socket, 'send_message', this.schemas.sendMessage, async (payload) => {
      this.metrics.messagesReceived.inc();
      return this.chat.send(session, payload);
    });
    this.on(socket, 'typing', this.schemas.typing, ({ channelId }) => {
      const { throttled } = this.chat.typing(session, channelId);
      if (throttled) return { throttled: true };
      socket.to(channelRoom(channelId)).volatile.emit('user_typing', { userId, channelId });
      return {};
    });
    this.on(socket, 'history', this.schemas.history, (payload) => this.chat.history(principal, payload));
    this.on(socket, 'presence', this.schemas.presence, async ({ channelId }) => ({
      users: await this.chat.presenceOf(principal, channelId),
    }));

    socket.on('disconnecting', (reason) => {
      clearTimeout(expiry!);
      // The rooms are left right after this event; onLeaveRoom updates presence for each.
      this.log.info({ socketId: socket.id, userId, reason }, 'disconnected');
    });
    socket.on('disconnect', () => {
      this.counted.delete(socket.id);
      this.metrics.connections.dec();
      const n = (this.userConnections.get(userId) ?? 1) - 1;
      if (n > 0) this.userConnections.set(userId, n);
      else this.userConnections.delete(userId);
    });
  }

  private async join(socket: IoSocket, session: Session, channelId: string, sinceSeq: number | undefined) {
    const room = channelRoom(channelId);
    const already = socket.rooms.has(room);
    if (!already) {
      let joined = 0;
      for (const r of socket.rooms) if (channelOfRoom(r) !== undefined) joined++;
      if (joined >= this.config.limits.channelsPerSocket) {
        throw new SwitchboardError(
          ErrorCode.RATE_LIMITED,
          `This connection has joined ${joined} channels, the most allowed; leave one first`,
          { retryAfterMs: 60_000 },
        );
      }
    }
    await this.chat.authorize(session.principal, channelId);
    // Enter the room before reading the catch-up, so no message falls between the two.
    await socket.join(memberRooms(channelId, socket.data.batch));
    let result;
    try {
      result = await this.chat.catchUp(channelId, sinceSeq);
    } catch (err) {
      if (!already) for (const r of memberRooms(channelId, socket.data.batch)) await socket.leave(r);
      throw err;
    }
    this.metrics.joins.inc();
    socket.emit('joined', { channelId, lastSeq: result.lastSeq, instance: this.config.instanceId });
    // Counted once per socket and channel, and only while the socket is still in the room: a second
    // join in flight, or a leave, disconnect or revoke during the awaits above, leaves no count behind.
    const entry = this.counted.get(socket.id);
    if (entry && socket.connected && socket.rooms.has(room) && !entry.channels.has(channelId)) {
      entry.channels.add(channelId);
      if (await this.chat.connected(channelId, session.principal.userId)) {
        socket.to(room).emit('user_joined', { userId: session.principal.userId, channelId, timestamp: new Date().toISOString() });
      }
    }
    return result;
  }

  /**
   * Registers a handler: validates the arguments (exactly one payload, then an optional callback),
   * runs `fn`, and answers with `{ok: true, ...result}` or the error.
   */
  private on<S extends z.ZodType, R extends object>(
    socket: IoSocket,
    event: ClientEventName,
    schema: S,
    fn: (payload: z.infer<S>) => R | Promise<R>,
  ): void {
    (socket as unknown as { on(e: string, l: (...args: unknown[]) => void): void }).on(event, (...args: unknown[]) => {
      const started = performance.now();
      const ack = typeof args.at(-1) === 'function' ? (args.pop() as Ack) : undefined;
      if (Date.now() >= socket.data.expiresAt) return this.expire(socket, event, ack);
      if (args.length !== 1) {
        return this.fail(socket, event, new SwitchboardError(ErrorCode.INVALID_PAYLOAD, `${event} takes exactly one payload argument`), ack);
      }
      const parsed = schema.safeParse(args[0]);
      if (!parsed.success) {
        const code = isTooLarge(parsed.error) ? ErrorCode.PAYLOAD_TOO_LARGE : ErrorCode.INVALID_PAYLOAD;
        return this.fail(socket, event, new SwitchboardError(code, describeIssues(parsed.error)), ack);
      }
      this.inFlight++;
      let settled: Promise<void>;
      try {
        settled = Promise.resolve(fn(parsed.data)).then(
          (result) => {
            ack?.({ ok: true, ...result });
            this.metrics.ackLatency.observe({ event }, (performance.now() - started) / 1000);
          },
          (err: unknown) => this.fail(socket, event, err, ack),
        );
      } catch (err) {
        settled = Promise.resolve(this.fail(socket, event, err, ack));
      }
      void settled.finally(() => {
        if (--this.inFlight === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const w of waiters) w();
        }
      });
    });
  }

  private fail(socket: IoSocket, event: string, err: unknown, ack: Ack | undefined): void {
    const body = toErrorBody(err);
    this.metrics.eventErrors.inc({ event: KNOWN_EVENTS.has(event) ? event : 'unknown', code: body.code });
    if (body.code === ErrorCode.INTERNAL) this.log.error({ err, event, userId: socket.data.userId }, 'event failed');
    else if (body.code === ErrorCode.UNAVAILABLE) this.log.warn({ event, reason: (err as Error)?.cause ? String((err as Error & { cause: Error }).cause.message) : undefined }, 'event failed: dependency unavailable');
    if (ack) ack({ ok: false, error: body });
    else socket.emit('error', { ...body, event });
  }

  private expire(socket: IoSocket, event?: string, ack?: Ack): void {
    const body = { code: ErrorCode.UNAUTHENTICATED, message: 'Token expired; reconnect with a fresh token' } as const;
    if (ack) ack({ ok: false, error: body });
    socket.emit('error', { ...body, event: event ?? 'session' });
    this.log.info({ userId: socket.data.userId }, 'session ended: token expired');
    socket.disconnect(true);
  }

  /**
   * Events per connection. Over the limit an event is answered RATE_LIMITED and not handled; a client
   * that keeps sending at twice the limit is disconnected rather than allowed to slow the server.
   */
  private installEventLimit(socket: IoSocket): void {
    const { points, durationMs } = this.config.limits.events;
    let windowStart = Date.now();
    let count = 0;
    socket.use((packet, next) => {
      const now = Date.now();
      if (now - windowStart >= durationMs) {
        windowStart = now;
        count = 0;
      }
      count++;
      if (count <= points) return next();
      if (count > points * 2) {
        this.log.warn({ userId: socket.data.userId, count }, 'disconnecting a client that ignores the event rate limit');
        socket.disconnect(true);
        return;
      }
      const last = packet[packet.length - 1];
      const ack = typeof last === 'function' ? (last as Ack) : undefined;
      const retryAfterMs = Math.max(1, durationMs - (now - windowStart));
      this.fail(socket, String(packet[0]).slice(0, 64), new SwitchboardError(ErrorCode.RATE_LIMITED, 'Too many events on this connection', { retryAfterMs }), ack);
    });
  }
}
