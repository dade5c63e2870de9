import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Server } from 'socket.io';
import type { Config } from './config.js';
import { Chat } from './core/chat.js';
import { HsTokenIssuer, JoseAuthenticator } from './adapters/auth/jose.js';
import { MemoryPresence } from './adapters/presence/memory.js';
import { RedisPresence } from './adapters/presence/redis.js';
import { FlexibleRateLimiter } from './adapters/ratelimit/flexible.js';
import { createRedisAdapter } from './adapters/redis/adapter.js';
import { connectRedis, redact, type RedisLinks } from './adapters/redis/connection.js';
import { BrokerHealth } from './adapters/redis/health.js';
import { openStore } from './adapters/store/index.js';
import { resolveJwt } from './dev-secret.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import type { Message } from 'switchboard-client/protocol';
import type { MessageStore } from './ports/message-store.js';
import type { Presence } from './ports/presence.js';
import { SocketIoBroadcaster } from './transport/broadcaster.js';
import { buildHttp, type HttpServer, type Readiness } from './transport/http.js';
import { corsOrigin, originAllowed } from './transport/origin.js';
import { handshakeLimit } from './transport/handshake-limit.js';
import { guardNewSessions, type Refusal } from './transport/session-guard.js';
import { SocketGateway } from './transport/socket-gateway.js';
import type { IoServer } from './transport/types.js';
import { drain, type DrainOptions } from './shutdown.js';

export interface AppOptions {
  /** Root logger; by default one is made from the config. */
  logger?: Logger;
  /** Built demo page; default: web/dist beside the package. */
  webDir?: string;
  /** Test-only fault hook, see ChatDeps.afterStore. */
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
  body: { error: { code: 'UNAVAILABLE', message: 'This instance is shutting down; connect to another one' } },
};

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} timed out`)), ms).unref())]);

/**
 * The composition root: the only place that constructs and wires. Opens the store (and Redis),
 * runs migrations, builds HTTP + Socket.IO on one server; does not listen until `listen()`.
 */
export async function createApp(inputConfig: Readonly<Config>, options: AppOptions = {}): Promise<App> {
  const config = resolveJwt(inputConfig);
  const logger = options.logger ?? createLogger({ level: config.logLevel, instanceId: config.instanceId });
  const metrics = createMetrics(config.instanceId);

  const cleanups: (() => Promise<unknown> | void)[] = [];
  const closeAll = async () => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  };

  try {
    const store: MessageStore = openStore(config.databaseUrl, logger.child({ component: 'store' }));
    cleanups.push(() => store.close());
    await store.migrate();
    await store.ensurePublicChannels(config.defaultChannels);

    let redis: RedisLinks | undefined;
    if (config.redisUrl) {
      redis = await connectRedis(config.redisUrl, logger.child({ component: 'redis' })).catch((err: Error) => {
        throw new Error(`Cannot reach Redis at ${redact(config.redisUrl!)}: ${err.message}. Start Redis or unset REDIS_URL for a single instance.`);
      });
      const links = redis;
      cleanups.push(() => links.close());
    }

    // Set once the adapter is wired; read by the adapters that must fail fast while Redis is away.
    let health: BrokerHealth | undefined;
    const presence: Presence = redis
      ? new RedisPresence(redis.pub, {
          instanceId: config.instanceId,
          ttlMs: config.presenceTtlMs,
          heartbeatMs: Math.floor(config.presenceTtlMs / 3),
          linkUp: () => health?.isUp ?? true,
          logger: logger.child({ component: 'presence' }),
        })
      : new MemoryPresence();
    await presence.start();
    cleanups.push(() => presence.close());

    const auth = new JoseAuthenticator(config.jwt);
    const issuer = config.jwt.secret && !config.production ? new HsTokenIssuer(config.jwt.secret, config.jwt) : undefined;

    let draining = false;
    const readiness = async (): Promise<Readiness> => {
      const checks: Record<string, string> = {};
      const reasons: string[] = [];
      try {
        await withTimeout(store.ping(), STORE_PING_TIMEOUT_MS, 'store ping');
        checks['store'] = 'up';
      } catch {
        checks['store'] = 'down';
        reasons.push('store: down');
      }
      if (health) {
        checks['broker'] = health.isUp ? 'up' : 'down';
        if (!health.isUp) reasons.push('broker: down');
      }
      checks['draining'] = String(draining);
      if (draining) reasons.push('draining: the instance is shutting down');
      return { ready: reasons.length === 0, checks, reasons };
    };

    // HTTP first: Socket.IO wraps the server's request listener and passes non-/socket.io/ requests on.
    let chat!: Chat;
    const http = buildHttp({
      config,
      get chat() {
        return chat;
      },
      auth,
      issuer,
      metrics,
      logger: logger.child({ component: 'http' }),
      readiness,
      webDir: options.webDir ?? DEFAULT_WEB_DIR,
    });
    const io: IoServer = new Server(http.server, {
      path: '/socket.io/',
      serveClient: false,
      transports: ['polling', 'websocket'],
      pingInterval: config.pingIntervalMs,
      pingTimeout: config.pingTimeoutMs,
      maxHttpBufferSize: config.maxFrameBytes,
      connectTimeout: 10_000,
      cors: { origin: corsOrigin(config), methods: ['GET', 'POST'], credentials: true },
      allowRequest: (req, callback) => {
        if (originAllowed(config, req)) return callback(null, true);
        metrics.handshakeRefusals.inc({ reason: 'origin' });
        logger.info({ origin: String(req.headers.origin).slice(0, 200) }, 'connection refused: origin not allowed (set ALLOWED_ORIGIN)');
        return callback('Origin not allowed', false);
      },
    });
    const limitPerAddress = handshakeLimit({
      limiter: new FlexibleRateLimiter(config.limits.handshakesPerIp, { name: 'handshakes', redis: redis?.pub, linkUp: () => health?.isUp ?? true }),
      trustProxy: config.trustProxy,
      metrics,
      logger: logger.child({ component: 'handshake' }),
    });
    // While draining, new sessions get 503 at once; otherwise the per-address limit applies.
    guardNewSessions(http.server, (req) => (draining ? DRAINING_REFUSAL : limitPerAddress(req)));

    if (redis) {
      io.adapter(createRedisAdapter(config.redisAdapter, redis));
      metrics.brokerUp.set(1);
      health = new BrokerHealth(redis.pub, logger.child({ component: 'broker' }), (up) => {
        metrics.brokerUp.set(up ? 1 : 0);
        // Broadcasts made while the link was down are lost (pub/sub keeps nothing): every client,
        // on every instance, refetches what it may have missed.
        if (up) io.emit('resync', { reason: 'broker-recovered' });
      });
      health.start();
      const h = health;
      cleanups.push(() => h.stop());
    }

    const broadcaster = new SocketIoBroadcaster(io, { metrics, brokerUp: () => health?.isUp ?? true });
    chat = new Chat({
      store,
      presence,
      broadcaster,
      messageLimiter: new FlexibleRateLimiter(config.limits.messages, { name: 'messages', redis: redis?.pub, linkUp: () => health?.isUp ?? true }),
      logger: logger.child({ component: 'chat' }),
      onStoreBatch: (size, ms) => {
        metrics.storeLatency.observe(ms / 1000);
        metrics.storeBatchSize.observe(size);
      },
      onStored: (duplicate) => (duplicate ? metrics.messagesDuplicate : metrics.messagesStored).inc(),
      ...(options.afterStore ? { afterStore: options.afterStore } : {}),
    });
    const gateway = new SocketGateway({ io, chat, auth, config, metrics, logger: logger.child({ component: 'socket' }) });

    let closed = false;
    const app: App = {
      config,
      logger,
      metrics,
      io,
      http,
      chat,
      get draining() {
        return draining;
      },
      async listen() {
        await http.listen({ port: config.port, host: config.host });
        const addr = http.server.address() as AddressInfo;
        const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
        return `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${addr.port}`;
      },
      readiness,
      async drain(opts) {
        if (draining) return;
        draining = true;
        metrics.draining.set(1);
        await drain(
          {
            io,
            logger: logger.child({ component: 'shutdown' }),
            settled: async () => {
              await gateway.idle();
              await chat.writesSettled();
            },
          },
          { noticeMs: config.shutdownNoticeMs, ...opts },
        );
        await app.close();
      },
      async close() {
        if (closed) return;
        closed = true;
        draining = true;
        await new Promise<void>((resolve) => io.close(() => resolve()));
        await http.close().catch(() => undefined);
        await closeAll();
      },
    };
    return app;
  } catch (err) {
    await closeAll();
    throw err;
  }
}
