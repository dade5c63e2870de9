import type { Logger } from 'pino';
import { AUTH_INVALID, AUTH_REQUIRED, ErrorCode, type ErrorBody, type SocketData } from 'switchboard-client/protocol';
import type { Metrics } from '../metrics.js';
import { AuthError, type Authenticator, type Principal } from '../ports/authenticator.js';
import { bearerToken } from './bearer.js';
import type { IoServer, IoSocket } from './types.js';

export interface HandshakeAuthDeps {
  auth: Authenticator;
  /** Connections one user may have open on this instance. */
  connectionsPerUser: number;
  metrics: Pick<Metrics, 'handshakeRefusals'>;
  logger: Logger;
}

/** How long a user at the connection limit is told to wait. */
const CONNECTION_LIMIT_RETRY_MS = 5000;

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
 */
export function authenticateHandshakes(io: IoServer, deps: HandshakeAuthDeps): void {
  const open = new Map<string, number>();
  const refuse = (socket: IoSocket, next: (err?: Error) => void, message: string, reason: string) => {
    deps.metrics.handshakeRefusals.inc({ reason });
    deps.logger.info({ reason, address: socket.handshake.address }, 'connection refused');
    next(refusal(message, { code: ErrorCode.UNAUTHENTICATED }));
  };

  io.use((socket, next) => {
    const token = handshakeToken(socket.handshake);
    if (!token) return refuse(socket, next, AUTH_REQUIRED, 'no_token');
    deps.auth.verify(token).then(
      (principal) => {
        const count = open.get(principal.userId) ?? 0;
        if (count < deps.connectionsPerUser) {
          socket.data = socketData(principal, socket.handshake.auth?.['batch'] === true);
          return next();
        }
        deps.metrics.handshakeRefusals.inc({ reason: 'too_many_connections' });
        deps.logger.info({ userId: principal.userId, count }, 'connection refused: too many connections for this user');
        const message = `Too many connections for this user (limit ${deps.connectionsPerUser})`;
        next(refusal(message, { code: ErrorCode.RATE_LIMITED, retryAfterMs: CONNECTION_LIMIT_RETRY_MS }));
      },
      (err: unknown) => {
        if (err instanceof AuthError) return refuse(socket, next, AUTH_INVALID, err.message.slice(0, 120));
        deps.logger.error({ err }, 'authentication failed unexpectedly');
        refuse(socket, next, AUTH_INVALID, 'verifier_error');
      },
    );
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

/** The verified identity behind a socket, from what `authenticateHandshakes` kept on it. */
export const principalOf = (data: SocketData): Principal => ({
  userId: data.userId,
  name: data.name,
  isAdmin: data.isAdmin,
  channels: [...data.grants],
  expiresAt: data.expiresAt,
  issuedAt: data.issuedAt,
});
