import type { Logger } from 'pino';
import { AUTH_INVALID, AUTH_REQUIRED, ErrorCode, type ErrorBody, type SocketData } from 'switchboard-client/protocol';
import type { Metrics, RefusalReason } from '../metrics.js';
import { AuthError, type Authenticator, type Principal } from '../ports/authenticator.js';
import type { RateDecision } from '../ports/rate-limiter.js';
import { bearerToken } from './bearer.js';
import type { HandshakeBudget } from './handshake-limit.js';
import type { IoServer, IoSocket } from './types.js';

export interface HandshakeAuthDeps {
  auth: Authenticator;
  /** Connections one user may have open on this instance. */
  connectionsPerUser: number;
  /** The per-address budget of new sessions; a session's repeated connect packets take from it too. */
  budget: HandshakeBudget;
  metrics: Pick<Metrics, 'refuseHandshake'>;
  logger: Logger;
}

/** How long a user at the connection limit, or a session closed for its connect packets, is told to wait. */
const CONNECTION_LIMIT_RETRY_MS = 5000;
/**
 * Connect packets one Engine.IO session may have refused or still being verified; when that many
 * are refused, or one more arrives, the server closes the session (a client retries on a new one).
 */
export const CONNECTS_PER_SESSION = 3;
const FIRST_CONNECT: RateDecision = { allowed: true };

/** A `connect_error` for the client: `message`, and `data` with the error code. */
const refusal = (message: string, data: Omit<ErrorBody, 'message'>): Error => Object.assign(new Error(message), { data });

/** The token of a handshake: `auth.token`, else the Authorization header. */
function handshakeToken(handshake: IoSocket['handshake']): string | undefined {
  const fromAuth: unknown = handshake.auth?.['token'];
  if (typeof fromAuth === 'string' && fromAuth.length > 0) return fromAuth;
  return bearerToken(handshake.headers['authorization']);
}

/** What the server keeps on a socket, from its verified token. */
const socketData = (p: Principal, batch: boolean): SocketData => ({
  userId: p.userId,
  name: p.name,
  isAdmin: p.isAdmin,
  grants: new Set(p.channels),
  expiresAt: p.expiresAt,
  issuedAt: p.issuedAt,
  batch,
});

/**
 * Verifies the token of every handshake and fills `socket.data`, or refuses with the contract's
 * `connect_error`: "Authentication required" / "Invalid or expired token" with UNAUTHENTICATED, or
 * RATE_LIMITED when the user already has `connectionsPerUser` connections on this instance.
 *
 * Socket.IO answers each connect packet of an Engine.IO session on its own, so one open session
 * could otherwise ask again and again. A session's first connect packet rides on the point its
 * handshake took from the per-address budget; each further one takes a point of its own, and a
 * session with CONNECTS_PER_SESSION connect packets refused or in flight is closed.
 */
export function authenticateHandshakes(io: IoServer, deps: HandshakeAuthDeps): void {
  const open = new Map<string, number>();
  const sessions = new SessionConnects();
  const refuse = (socket: IoSocket, next: (err?: Error) => void, reason: RefusalReason, err: Error, context: object = {}) => {
    next(err);
    // A session already closing for its earlier refusals: Socket.IO drops the answer; nothing to count.
    if (sessions.closing(socket.conn)) return;
    deps.metrics.refuseHandshake(reason);
    deps.logger.info({ reason, address: socket.handshake.address, ...context }, 'connection refused');
    const spent = reason === 'rate_limited' || reason === 'repeated_connects' || sessions.unaccepted(socket.conn) >= CONNECTS_PER_SESSION;
    if (!spent) return;
    deps.logger.info({ address: socket.handshake.address }, 'closing an Engine.IO session: too many connect packets refused');
    sessions.close(socket.conn);
  };
  const unauthenticated = (message: string) => refusal(message, { code: ErrorCode.UNAUTHENTICATED });

  const verify = (socket: IoSocket, next: (err?: Error) => void) => {
    const token = handshakeToken(socket.handshake);
    if (!token) return refuse(socket, next, 'no_token', unauthenticated(AUTH_REQUIRED));
    deps.auth.verify(token).then(
      (principal) => {
        const count = open.get(principal.userId) ?? 0;
        if (count < deps.connectionsPerUser) {
          sessions.accepted(socket.conn);
          socket.data = socketData(principal, socket.handshake.auth?.['batch'] === true);
          return next();
        }
        const message = `Too many connections for this user (limit ${deps.connectionsPerUser})`;
        const err = refusal(message, { code: ErrorCode.RATE_LIMITED, retryAfterMs: CONNECTION_LIMIT_RETRY_MS });
        refuse(socket, next, 'too_many_connections', err, { userId: principal.userId, count });
      },
      (err: unknown) => {
        // The reason is one of a fixed set: an AuthError's text names what the client sent.
        if (err instanceof AuthError) return refuse(socket, next, 'invalid_token', unauthenticated(AUTH_INVALID));
        deps.logger.error({ err }, 'authentication failed unexpectedly');
        refuse(socket, next, 'verifier_error', unauthenticated(AUTH_INVALID));
      },
    );
  };

  io.use((socket, next) => {
    const tries = sessions.begin(socket.conn);
    const tooMany = { allowed: false as const, retryAfterMs: CONNECTION_LIMIT_RETRY_MS };
    const admitted = tries === 1 ? Promise.resolve(FIRST_CONNECT) : tries > CONNECTS_PER_SESSION ? Promise.resolve(tooMany) : deps.budget(socket.request);
    void admitted.then((decision) => {
      if (decision.allowed) return verify(socket, next);
      const message = 'Too many connection attempts; retry on a new connection later';
      const reason = tries > CONNECTS_PER_SESSION ? 'repeated_connects' : 'rate_limited';
      refuse(socket, next, reason, refusal(message, { code: ErrorCode.RATE_LIMITED, retryAfterMs: decision.retryAfterMs }));
    });
  });

  io.on('connection', (socket) => {
    const { userId } = socket.data;
    open.set(userId, (open.get(userId) ?? 0) + 1);
    socket.once('disconnect', () => {
      const n = (open.get(userId) ?? 1) - 1;
      if (n > 0) open.set(userId, n);
      else open.delete(userId);
    });
  });
}

type EngineConn = IoSocket['conn'];

/** Per Engine.IO session: its connect packets not accepted (refused or being verified), and whether it is being closed. */
class SessionConnects {
  private readonly pending = new WeakMap<EngineConn, number>();
  private readonly closed = new WeakSet<EngineConn>();

  /** Counts a connect packet; returns how many of the session's are now unaccepted. */
  begin(conn: EngineConn): number {
    const n = this.unaccepted(conn) + 1;
    this.pending.set(conn, n);
    return n;
  }

  accepted(conn: EngineConn): void {
    this.pending.set(conn, this.unaccepted(conn) - 1);
  }

  unaccepted(conn: EngineConn): number {
    return this.pending.get(conn) ?? 0;
  }

  closing(conn: EngineConn): boolean {
    return this.closed.has(conn) || conn.readyState !== 'open';
  }

  /**
   * Closes the session once Socket.IO has written the connect_errors already decided (it writes
   * each on the next tick after the refusal); any refusal decided later is dropped with the session.
   */
  close(conn: EngineConn): void {
    this.closed.add(conn);
    process.nextTick(() => conn.close());
  }
}

/** The verified identity behind a socket, from what `authenticateHandshakes` kept on it. */
export const principalOf = (data: SocketData): Principal => ({
  userId: data.userId,
  name: data.name,
  isAdmin: data.isAdmin,
  channels: [...data.grants],
  expiresAt: data.expiresAt,
  issuedAt: data.issuedAt,
});
