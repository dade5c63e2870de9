import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Config } from '../config.js';
import type { Chat, Session } from '../core/chat.js';
import type { Metrics } from '../metrics.js';
import { ErrorCode, SwitchboardError, isClientEvent, type ClientEventName, createSchemas } from 'switchboard-client/protocol';
import type { Authenticator } from '../ports/authenticator.js';
import type { Broadcaster } from '../ports/broadcaster.js';
import { ackOf, invalidPayload, toErrorBody } from './answers.js';
import { limitEvents } from './event-limit.js';
import { authenticateHandshakes, principalOf } from './handshake-auth.js';
import type { HandshakeBudget } from './handshake-limit.js';
import { InFlight } from './in-flight.js';
import { capOutgoing } from './slow-consumer.js';
import type { AckFn, EventListener, EventPayload, EventResult, IoServer, IoSocket } from './types.js';

export interface GatewayDeps {
  io: IoServer;
  chat: Chat;
  auth: Authenticator;
  /** The per-address budget of connection attempts, which a session's repeated connect packets draw on. */
  handshakeBudget: HandshakeBudget;
  /** Answers to one socket (`error`) go through it like every other emit. */
  broadcaster: Pick<Broadcaster, 'toConnection'>;
  config: Pick<Config, 'maxMessageLength' | 'limits'>;
  metrics: Metrics;
  logger: Logger;
}

/** Longest delay a Node timer takes (~24.8 days); a later expiry re-arms instead of firing early. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Socket.IO ↔ core: validates every event, calls the core and answers with an ack (or an `error`
 * event when the client gave no callback). A bad event never disconnects the socket. The server ends
 * a session only when its token expires, when the client keeps sending at twice the event rate
 * limit, when its outgoing buffer is over the cap (a slow consumer), when it sends a frame over
 * MAX_FRAME_BYTES (Engine.IO closes it), or when the instance drains.
 */
export class SocketGateway {
  private readonly deps: GatewayDeps;
  private readonly log: Logger;
  private readonly schemas: ReturnType<typeof createSchemas>;
  private readonly inFlight = new InFlight();

  constructor(deps: GatewayDeps) {
    this.deps = deps;
    this.log = deps.logger;
    this.schemas = createSchemas({ maxMessageLength: deps.config.maxMessageLength });
    authenticateHandshakes(deps.io, {
      auth: deps.auth,
      connectionsPerUser: deps.config.limits.connectionsPerUser,
      budget: deps.handshakeBudget,
      metrics: deps.metrics,
      logger: deps.logger,
    });
    deps.io.on('connection', (socket) => this.onConnection(socket));
  }

  /** Resolves when no event handler is running. */
  idle(): Promise<void> {
    return this.inFlight.idle();
  }

  private onConnection(socket: IoSocket): void {
    const { chat, metrics, config } = this.deps;
    const session: Session = { id: socket.id, principal: principalOf(socket.data) };
    metrics.connections.inc();
    metrics.connectionsTotal.inc();
    this.log.info({ socketId: socket.id, userId: session.principal.userId, transport: socket.conn.transport.name }, 'connected');
    chat.membership.connect(session);
    socket.on('disconnecting', (reason) => {
      this.log.info({ socketId: socket.id, userId: session.principal.userId, reason }, 'disconnected');
    });
    socket.on('disconnect', () => {
      chat.membership.disconnect(socket.id);
      metrics.connections.dec();
    });

    limitEvents(socket, config.limits.events, { logger: this.log, refuse: (event, err, ack) => this.fail(socket, event, err, ack) });
    capOutgoing(socket, { maxBytes: config.limits.outgoingBytes, maxPackets: config.limits.outgoingPackets }, { metrics, logger: this.log });
    socket.onAny((event: unknown, ...args: unknown[]) => {
      if (isClientEvent(event)) return;
      this.fail(socket, String(event).slice(0, 64), new SwitchboardError(ErrorCode.INVALID_PAYLOAD, 'Unknown event'), ackOf(args));
    });
    this.route(socket, session);
    // Last: an expiry that is already due ends the session, whose disconnect handlers are in place.
    this.watchExpiry(socket);
  }

  /** Each client event to its core call. */
  private route(socket: IoSocket, session: Session): void {
    const { membership, messaging } = this.deps.chat;
    const { metrics } = this.deps;
    const s = this.schemas;
    socket.on('join_channel', this.handler(socket, 'join_channel', s.joinChannel, async (payload) => {
      const { channelId, sinceSeq } = typeof payload === 'string' ? { channelId: payload, sinceSeq: undefined } : payload;
      const result = await membership.join(session, channelId, sinceSeq);
      metrics.joins.inc();
      return result;
    }));
    socket.on('leave_channel', this.handler(socket, 'leave_channel', s.leaveChannel, (payload) =>
      membership.leave(session, typeof payload === 'string' ? payload : payload.channelId),
    ));
    socket.on('send_message', this.handler(socket, 'send_message', s.sendMessage, (payload) => {
      metrics.messagesReceived.inc();
      return messaging.send(session, payload);
    }));
    socket.on('typing', this.handler(socket, 'typing', s.typing, ({ channelId }) => membership.typing(session, channelId)));
    socket.on('history', this.handler(socket, 'history', s.history, (payload) => messaging.history(session.principal, payload)));
    socket.on('presence', this.handler(socket, 'presence', s.presence, ({ channelId }) => membership.presence(session.principal, channelId)));
  }

  /**
   * A listener that validates the arguments (exactly one payload, then an optional callback), runs
   * `run`, and answers with `{ok: true, ...result}` or the error.
   */
  private handler<E extends ClientEventName>(
    socket: IoSocket,
    event: E,
    schema: z.ZodType<EventPayload<E>>,
    run: (payload: EventPayload<E>) => EventResult<E> | Promise<EventResult<E>>,
  ): EventListener<E> {
    return (...args: unknown[]) => {
      const started = performance.now();
      const ack = ackOf(args);
      if (ack) args.pop();
      if (Date.now() >= socket.data.expiresAt) return this.expire(socket, event, ack);
      if (args.length !== 1) {
        return this.fail(socket, event, new SwitchboardError(ErrorCode.INVALID_PAYLOAD, `${event} takes exactly one payload argument`), ack);
      }
      const parsed = schema.safeParse(args[0]);
      if (!parsed.success) return this.fail(socket, event, invalidPayload(parsed.error), ack);
      const answered = new Promise<EventResult<E>>((resolve) => resolve(run(parsed.data))).then(
        (result) => {
          ack?.({ ok: true, ...result });
          this.deps.metrics.acked(event, (performance.now() - started) / 1000);
        },
        (err: unknown) => this.fail(socket, event, err, ack),
      );
      this.inFlight.track(answered);
    };
  }

  private fail(socket: IoSocket, event: string, err: unknown, ack: AckFn | undefined): void {
    const body = toErrorBody(err);
    this.deps.metrics.eventFailed(event, body.code);
    if (body.code === ErrorCode.INTERNAL) this.log.error({ err, event, userId: socket.data.userId }, 'event failed');
    else if (body.code === ErrorCode.UNAVAILABLE) this.log.warn({ event, reason: causeOf(err) }, 'event failed: dependency unavailable');
    if (ack) ack({ ok: false, error: body });
    else this.deps.broadcaster.toConnection(socket.id, 'error', { ...body, event });
  }

  /** Ends the session when its token expires; the client reconnects with a fresh token. */
  private watchExpiry(socket: IoSocket): void {
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      const left = socket.data.expiresAt - Date.now();
      if (left <= 0) return this.expire(socket);
      timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
      timer.unref();
    };
    socket.once('disconnecting', () => clearTimeout(timer));
    arm();
  }

  private expire(socket: IoSocket, event?: string, ack?: AckFn): void {
    const body = { code: ErrorCode.UNAUTHENTICATED, message: 'Token expired; reconnect with a fresh token' } as const;
    if (ack) ack({ ok: false, error: body });
    this.deps.broadcaster.toConnection(socket.id, 'error', { ...body, event: event ?? 'session' });
    this.log.info({ userId: socket.data.userId }, 'session ended: token expired');
    socket.disconnect(true);
  }
}

const causeOf = (err: unknown): string | undefined => {
  const cause = (err as Error | undefined)?.cause;
  return cause instanceof Error ? cause.message : undefined;
};
