import type { Server as NodeHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Server } from 'socket.io';
import { demoOn, devFeaturesOn, modeWarning, type Config } from './config.js';
import { Chat } from './core/chat.js';
import { HsTokenIssuer, JoseAuthenticator } from './adapters/auth/jose.js';
import { createRedisAdapter } from './adapters/redis/adapter.js';
import type { RedisLinks } from './adapters/redis/connection.js';
import { openBackends, type Backends } from './backends.js';
import { resolveJwt } from './dev-secret.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { ErrorCode, type Message } from 'switchboard-client/protocol';
import { SocketIoBroadcaster } from './transport/broadcaster.js';
import { createHttpServer, registerRoutes, type HttpServer, type Readiness } from './transport/http.js';
import { corsOrigin, originAllowed } from './transport/origin.js';
import { clientAddressOf } from './transport/client-address.js';
import { handshakeBudget, handshakeLimit } from './transport/handshake-limit.js';
import { SocketIoRooms } from './transport/rooms.js';
import { connectionCap } from './transport/connection-cap.js';
import { guardRequests, onNewSessions, type Refusal } from './transport/session-guard.js';
import { SocketGateway } from './transport/socket-gateway.js';
import type { IoServer } from './transport/types.js';
import { drain, type DrainOptions } from './shutdown.js';

export interface AppOptions {
  /** Root logger; by default one is made from the config. */
  logger?: Logger;
  /** Built demo page; default: web/dist beside the package. */
  webDir?: string;
  /** Test-only fault hook, see MessagingDeps.afterStore. */
  afterStore?: (message: Message) => void;
}

export interface App {
  readonly config: Readonly<Config>;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly io: IoServer;
  readonly http: HttpServer;
  readonly chat: Chat;
  readonly draining: boolean;
  /** Starts listening; resolves with the base URL. */
  listen(): Promise<string>;
  /** Readiness as /readyz reports it. */
  readiness(): Promise<Readiness>;
  /** The contract's graceful shutdown; resolves when everything is closed. */
  drain(options?: Partial<DrainOptions>): Promise<void>;
  /** Immediate teardown without notices (tests, failed start-up). */
  close(): Promise<void>;
}

const DEFAULT_WEB_DIR = fileURLToPath(new URL('../web/dist/', import.meta.url));
const STORE_PING_TIMEOUT_MS = 1500;
const DRAINING_REFUSAL: Refusal = {
  status: 503,
  headers: { 'retry-after': '1' },
  body: { error: { code: ErrorCode.UNAVAILABLE, message: 'This instance is shutting down; connect to another one' } },
};

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} timed out`)), ms).unref())]);

/**
 * The composition root: the only place that constructs and wires. Opens the backends (store, Redis,
 * presence), then builds in order the delivery layer (HTTP and Socket.IO on one server, the
 * broadcaster and rooms), the core, and the entry points (socket gateway, HTTP routes); does not
 * listen until `listen()`.
 */
export async function createApp(inputConfig: Readonly<Config>, options: AppOptions = {}): Promise<App> {
  const config = resolveJwt(inputConfig);
  const logger = options.logger ?? createLogger({ level: config.logLevel, instanceId: config.instanceId });
  const metrics = createMetrics(config.instanceId);
  const warning = modeWarning(config);
  if (warning) logger.warn(warning);

  const backends = await openBackends(config, logger);
  try {
    return assemble({ config, logger, metrics, backends, options });
  } catch (err) {
    await backends.close();
    throw err;
  }
}

interface Parts {
  config: Readonly<Config>;
  logger: Logger;
  metrics: Metrics;
  backends: Backends;
  options: AppOptions;
}

/** Mutable state of the app's life: draining from the first drain or close on. */
interface Lifecycle {
  draining: boolean;
  closed: boolean;
}

function assemble({ config, logger, metrics, backends, options }: Parts): App {
  // HTTP first: Socket.IO wraps the server's request listener and passes non-/socket.io/ requests on.
  const http = createHttpServer(config, logger.child({ component: 'http' }));
  const io = createSocketServer(http.server, config, backends.redis, { metrics, logger: logger.child({ component: 'socket' }) });
  const brokerUp = backends.broker.isUp;
  const broadcaster = new SocketIoBroadcaster(io, { metrics, brokerUp });
  const rooms = new SocketIoRooms(io, { brokerUp });
  if (backends.redis) metrics.brokerUp.set(1);
  backends.broker.onChange((up) => {
    metrics.brokerUp.set(up ? 1 : 0);
    // Broadcasts made while the link was down are lost (pub/sub keeps nothing): every client,
    // on every instance, refetches what it may have missed.
    if (up) broadcaster.toEveryone('resync', { reason: 'broker-recovered' });
  });

  const chat = new Chat({
    store: backends.store,
    presence: backends.presence,
    broadcaster,
    rooms,
    messageLimiter: backends.limiter('messages', config.limits.messages),
    readLimiter: { limiter: backends.limiter('reads', config.limits.reads), points: config.limits.reads.points },
    presenceMaxUsers: config.presenceMaxUsers,
    presenceCacheMs: config.presenceCacheMs,
    noticeIntervalMs: config.presenceNoticeIntervalMs,
    logger: logger.child({ component: 'chat' }),
    instanceId: config.instanceId,
    channelsPerConnection: config.limits.channelsPerSocket,
    onStoreBatch: (size, ms) => {
      metrics.storeLatency.observe(ms / 1000);
      metrics.storeBatchSize.observe(size);
    },
    onStored: (duplicate) => (duplicate ? metrics.messagesDuplicate : metrics.messagesStored).inc(),
    afterStore: options.afterStore,
  });

  const auth = new JoseAuthenticator(config.jwt);
  const address = clientAddressOf(config.trustProxy);
  const handshakeLog = logger.child({ component: 'handshake' });
  const budget = handshakeBudget({ limiter: backends.limiter('handshakes', config.limits.handshakesPerIp), address, logger: handshakeLog });
  const gateway = new SocketGateway({ io, chat, auth, handshakeBudget: budget, broadcaster, config, metrics, logger: logger.child({ component: 'socket' }) });
  const lifecycle: Lifecycle = { draining: false, closed: false };
  const readiness = () => checkReadiness(backends, lifecycle);
  // Development features only on the generated development secret (config.ts, devFeaturesOn).
  const issuer = devFeaturesOn(config) && config.jwt.secret ? new HsTokenIssuer(config.jwt.secret, config.jwt) : undefined;
  const routeConfig = { ...config, demo: demoOn(config) };
  registerRoutes(http, { config: routeConfig, chat, auth, issuer, metrics, readiness, webDir: options.webDir ?? DEFAULT_WEB_DIR });
  const limitPerAddress = handshakeLimit(budget, { metrics, logger: handshakeLog, address });
  const capPerAddress = connectionCap(config.limits.httpConnectionsPerIp, { address, metrics, logger: logger.child({ component: 'http' }) });
  // While draining, new sessions get 503 at once; otherwise the per-address limit applies.
  const newSessions = onNewSessions((req) => (lifecycle.draining ? DRAINING_REFUSAL : limitPerAddress(req)));
  guardRequests(http.server, (req) => capPerAddress(req) ?? newSessions(req));

  const settled = async () => {
    await gateway.idle();
    await chat.messaging.writesSettled();
  };
  return handle({ config, logger, metrics, io, http, chat, broadcaster, backends, lifecycle, readiness, settled });
}

function createSocketServer(server: NodeHttpServer, config: Readonly<Config>, redis: RedisLinks | undefined, deps: { metrics: Metrics; logger: Logger }): IoServer {
  return new Server(server, {
    path: '/socket.io/',
    serveClient: false,
    transports: ['polling', 'websocket'],
    pingInterval: config.pingIntervalMs,
    pingTimeout: config.pingTimeoutMs,
    maxHttpBufferSize: config.maxFrameBytes,
    connectTimeout: 10_000,
    // A polling POST's body must arrive as fast as any other HTTP request's.
    httpRequestBodyTimeout: config.httpRequestTimeoutMs,
    cors: { origin: corsOrigin(config), methods: ['GET', 'POST'], credentials: true },
    allowRequest: (req, callback) => {
      if (originAllowed(config, req)) return callback(null, true);
      deps.metrics.refuseHandshake('origin');
      deps.logger.info({ origin: String(req.headers.origin).slice(0, 200) }, 'connection refused: origin not allowed (set ALLOWED_ORIGIN)');
      return callback('Origin not allowed', false);
    },
    // The adapter that carries broadcasts between instances.
    ...(redis ? { adapter: createRedisAdapter(config.redisAdapter, redis) } : {}),
  });
}

async function checkReadiness(backends: Backends, lifecycle: Lifecycle): Promise<Readiness> {
  const checks: Record<string, string> = {};
  const reasons: string[] = [];
  try {
    await withTimeout(backends.store.ping(), STORE_PING_TIMEOUT_MS, 'store ping');
    checks['store'] = 'up';
  } catch {
    checks['store'] = 'down';
    reasons.push('store: down');
  }
  if (backends.redis) {
    const up = backends.broker.isUp();
    checks['broker'] = up ? 'up' : 'down';
    if (!up) reasons.push('broker: down');
  }
  checks['draining'] = String(lifecycle.draining);
  if (lifecycle.draining) reasons.push('draining: the instance is shutting down');
  return { ready: reasons.length === 0, checks, reasons };
}

interface Built extends Omit<Parts, 'options'> {
  io: IoServer;
  http: HttpServer;
  chat: Chat;
  broadcaster: SocketIoBroadcaster;
  lifecycle: Lifecycle;
  readiness: () => Promise<Readiness>;
  /** Resolves when every event received has been handled and every accepted send stored. */
  settled: () => Promise<void>;
}

/** The App over the built parts: listening, readiness, drain and close. */
function handle(built: Built): App {
  const { config, logger, metrics, io, http, lifecycle } = built;
  const app: App = {
    config,
    logger,
    metrics,
    io,
    http,
    chat: built.chat,
    get draining() {
      return lifecycle.draining;
    },
    async listen() {
      await http.listen({ port: config.port, host: config.host });
      const addr = http.server.address() as AddressInfo;
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      return `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${addr.port}`;
    },
    readiness: built.readiness,
    async drain(opts) {
      if (lifecycle.draining) return;
      lifecycle.draining = true;
      metrics.draining.set(1);
      const target = { io, broadcaster: built.broadcaster, logger: logger.child({ component: 'shutdown' }), settled: built.settled };
      await drain(target, { noticeMs: config.shutdownNoticeMs, ...opts });
      await app.close();
    },
    async close() {
      if (lifecycle.closed) return;
      lifecycle.closed = true;
      lifecycle.draining = true;
      built.chat.membership.close();
      await new Promise<void>((resolve) => io.close(() => resolve()));
      await http.close().catch(() => undefined);
      await built.backends.close();
    },
  };
  return app;
}
