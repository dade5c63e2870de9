import type { KeyObject } from 'node:crypto';
import { ENV_TABLE, type DefaultContext, type Env, type EnvName } from './config/table.js';
import type { CrashAfterStoreSpec, LogFormat, RateSpec, RedisAdapterKind } from './config/rules.js';
import { isPlaceholder, urlPassword } from './config/placeholders.js';

export { ENV_TABLE, type EnvName, type EnvVariable } from './config/table.js';
export type { CrashAfterStoreSpec, LogFormat, RateSpec, RedisAdapterKind } from './config/rules.js';

export interface JwtConfig {
  /** HS256 key (UTF-8 bytes of JWT_SECRET, ≥ 32 bytes). */
  secret: string | undefined;
  /** True when the secret was generated for development and kept in the data directory. */
  secretIsDev: boolean;
  /** RS256/ES256 public key from JWT_PUBLIC_KEY. */
  publicKey: KeyObject | undefined;
  publicKeyAlg: 'RS256' | 'ES256' | undefined;
  jwksUrl: URL | undefined;
  issuer: string | undefined;
  audience: string | undefined;
}

/** One validated, frozen object: the server reads its environment only through loadConfig. */
export interface Config {
  production: boolean;
  /** NODE_ENV as given; `production` is also `production: true`. */
  nodeEnv: string | undefined;
  port: number;
  host: string;
  instanceId: string;
  databaseUrl: string;
  redisUrl: string | undefined;
  redisAdapter: RedisAdapterKind;
  /** Where SQLite and the development JWT secret live. */
  dataDir: string;
  jwt: JwtConfig;
  /** Exact origins; `dev-localhost` = any http(s) origin on localhost; `same-origin` = the Host header's. */
  allowedOrigins: readonly string[] | 'dev-localhost' | 'same-origin';
  /** Addresses of proxies whose X-Forwarded-For is believed (proxy-addr syntax: IPs, CIDRs, `loopback`). */
  trustProxy: readonly string[];
  pingIntervalMs: number;
  pingTimeoutMs: number;
  shutdownNoticeMs: number;
  shutdownTimeoutMs: number;
  maxMessageLength: number;
  maxFrameBytes: number;
  defaultChannels: readonly string[];
  logLevel: string;
  /** How log lines look; `auto` is decided where the logger meets its stream (logger.ts). */
  logFormat: LogFormat;
  /** Serve the demo page at `/`. Default: on in development, off in production. */
  demo: boolean;
  /** How long a dead instance's presence outlives its last heartbeat (heartbeats every third of it). */
  presenceTtlMs: number;
  /** Most users one `presence` ack lists; larger channels are answered truncated, with their total. */
  presenceMaxUsers: number;
  /** How long a channel's presence list is reused on this instance; 0: not at all. */
  presenceCacheMs: number;
  /** At most one user_joined/user_left per user and channel per this interval, per instance; 0: no damping. */
  presenceNoticeIntervalMs: number;
  /** How long a SQLite call retries a file locked by another process (asynchronously) before UNAVAILABLE. */
  sqliteLockTimeoutMs: number;
  /** Time to receive a whole HTTP request (headers and body). */
  httpRequestTimeoutMs: number;
  /** Idle time after which a keep-alive HTTP connection is closed. */
  httpKeepAliveTimeoutMs: number;
  limits: {
    /** Messages per user (cluster-wide with Redis). */
    messages: RateSpec;
    /** Events of any kind per connection. */
    events: RateSpec;
    /** Read points per user (history pages and presence, weighted by their size). */
    reads: RateSpec;
    /** Handshakes per client IP. */
    handshakesPerIp: RateSpec;
    /** Simultaneous connections per user on one instance. */
    connectionsPerUser: number;
    /** Channels one socket may be joined to. */
    channelsPerSocket: number;
    /** Bytes queued towards one client before it is dropped as a slow consumer. */
    outgoingBytes: number;
    /** Packets queued towards one client before it is dropped as a slow consumer. */
    outgoingPackets: number;
    /** Simultaneous TCP connections of one client address. */
    httpConnectionsPerIp: number;
  };
  /** Test-only fault hook (SWITCHBOARD_FAULT_CRASH_AFTER_STORE); armed only with NODE_ENV=test (faultHookArmed). */
  faultCrashAfterStore: CrashAfterStoreSpec | undefined;
}

export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

const NAMES = Object.keys(ENV_TABLE) as EnvName[];

/** The set variables, each through its rule. Empty strings count as unset, the way shells and compose files write "VAR=". */
function parseSet(env: Record<string, string | undefined>): Partial<Env> {
  const set: Partial<Record<EnvName, unknown>> = {};
  for (const name of NAMES) {
    const text = env[name];
    if (text === undefined || text === '') continue;
    const parsed = ENV_TABLE[name].rule.safeParse(text);
    if (!parsed.success) throw new ConfigError(name, parsed.error.issues[0]!.message);
    set[name] = parsed.data;
  }
  return set as Partial<Env>;
}

/** Every variable: its set value, else its default. */
function withDefaults(set: Partial<Env>): Env {
  const context: DefaultContext = { production: set.NODE_ENV === 'production', dataDir: set.DATA_DIR ?? ENV_TABLE.DATA_DIR.fallback() };
  return Object.fromEntries(NAMES.map((name) => [name, name in set ? set[name] : ENV_TABLE[name].fallback(context)])) as Env;
}

/** The rules across variables. */
function checkAcross(config: Config): void {
  requireJwtInProduction(config);
  if (config.production) refusePlaceholders(config);
  if (config.shutdownNoticeMs >= config.shutdownTimeoutMs) {
    throw new ConfigError('SHUTDOWN_NOTICE_MS', `must be below SHUTDOWN_TIMEOUT_MS (${config.shutdownTimeoutMs})`);
  }
}

/** The Config the rest of src/ reads, field by field from the table's values (rules and defaults stay in the table). */
function toConfig(e: Env): Config {
  return {
    production: e.NODE_ENV === 'production',
    nodeEnv: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    instanceId: e.INSTANCE_ID,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    redisAdapter: e.REDIS_ADAPTER,
    dataDir: e.DATA_DIR,
    jwt: Object.freeze({
      secret: e.JWT_SECRET,
      secretIsDev: false,
      publicKey: e.JWT_PUBLIC_KEY?.key,
      publicKeyAlg: e.JWT_PUBLIC_KEY?.alg,
      jwksUrl: e.JWKS_URL,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
    }),
    allowedOrigins: typeof e.ALLOWED_ORIGIN === 'string' ? e.ALLOWED_ORIGIN : Object.freeze(e.ALLOWED_ORIGIN),
    trustProxy: Object.freeze(e.TRUST_PROXY ?? []),
    pingIntervalMs: e.PING_INTERVAL_MS,
    pingTimeoutMs: e.PING_TIMEOUT_MS,
    shutdownNoticeMs: e.SHUTDOWN_NOTICE_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    maxMessageLength: e.MAX_MESSAGE_LENGTH,
    maxFrameBytes: e.MAX_FRAME_BYTES,
    defaultChannels: Object.freeze(e.DEFAULT_CHANNELS),
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    demo: e.DEMO,
    presenceTtlMs: e.PRESENCE_TTL_MS,
    presenceMaxUsers: e.PRESENCE_MAX_USERS,
    presenceCacheMs: e.PRESENCE_CACHE_MS,
    presenceNoticeIntervalMs: e.PRESENCE_NOTICE_INTERVAL_MS,
    sqliteLockTimeoutMs: e.SQLITE_LOCK_TIMEOUT_MS,
    httpRequestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
    httpKeepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    limits: Object.freeze({
      messages: e.RATE_LIMIT_MESSAGES,
      events: e.RATE_LIMIT_EVENTS,
      reads: e.RATE_LIMIT_READS,
      handshakesPerIp: e.RATE_LIMIT_HANDSHAKES,
      connectionsPerUser: e.MAX_CONNECTIONS_PER_USER,
      channelsPerSocket: e.MAX_CHANNELS_PER_SOCKET,
      outgoingBytes: e.MAX_OUTGOING_BYTES,
      outgoingPackets: e.MAX_OUTGOING_PACKETS,
      httpConnectionsPerIp: e.MAX_HTTP_CONNECTIONS_PER_IP,
    }),
    faultCrashAfterStore: e.SWITCHBOARD_FAULT_CRASH_AFTER_STORE,
  };
}

/**
 * Validates the environment against ENV_TABLE into a frozen Config. Throws ConfigError naming the
 * first bad variable. Pure: reads nothing but `env` (resolveJwt, in dev-secret.ts, fills in the
 * development JWT secret at start-up).
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Readonly<Config> {
  const config = toConfig(withDefaults(parseSet(env)));
  checkAcross(config);
  return Object.freeze(config);
}

export const hasJwtConfig = (c: Config): boolean => Boolean(c.jwt.secret || c.jwt.publicKey || c.jwt.jwksUrl);

/** The production-JWT rule: production runs only on the operator's JWT configuration, never on a generated secret. */
export function requireJwtInProduction(config: Config): void {
  if (config.production && !hasJwtConfig(config)) {
    throw new ConfigError(
      'JWT_SECRET',
      'NODE_ENV=production needs JWT configuration: set JWT_SECRET (HS256, ≥ 32 bytes), JWT_PUBLIC_KEY (PEM) or JWKS_URL',
    );
  }
}

/** Production never runs on a secret or password left as an example file wrote it (deploy/k8s/secret.example.yaml). */
function refusePlaceholders(config: Config): void {
  const what = 'looks like a placeholder copied from an example (e.g. "change-me"): generate a real one (openssl rand -hex 32)';
  if (config.jwt.secret !== undefined && isPlaceholder(config.jwt.secret)) throw new ConfigError('JWT_SECRET', what);
  for (const [name, url] of [['DATABASE_URL', config.databaseUrl], ['REDIS_URL', config.redisUrl]] as const) {
    const password = url === undefined ? undefined : urlPassword(url);
    if (password !== undefined && isPlaceholder(password)) throw new ConfigError(name, `has a password that ${what}`);
  }
}

/**
 * The development features (`/dev/token`, the demo page and its sign-in) run only on the generated
 * development secret: never with an operator's JWT_SECRET, JWT_PUBLIC_KEY or JWKS_URL, so never in
 * production (which requires one of them).
 */
export const devFeaturesOn = (c: Config): boolean => c.jwt.secretIsDev;

/** The demo page: asked for (DEMO) and with its sign-in available. */
export const demoOn = (c: Config): boolean => c.demo && devFeaturesOn(c);

/** The test-only fault hook fires only where a test asked for it: NODE_ENV=test and the hook's variable. */
export const faultHookArmed = (c: Config): boolean => c.nodeEnv === 'test' && c.faultCrashAfterStore !== undefined;

const KNOWN_MODES = new Set(['production', 'development', 'test']);

/**
 * For a NODE_ENV other than production, development or test (say `staging`): a warning that it runs
 * with the development defaults and says which features are on. Undefined for the known modes.
 */
export function modeWarning(c: Config): string | undefined {
  const mode = c.nodeEnv;
  if (mode === undefined || KNOWN_MODES.has(mode)) return undefined;
  const on = (flag: boolean) => (flag ? 'on' : 'off');
  return (
    `NODE_ENV=${mode.slice(0, 32)} is not production, development or test: running with the development defaults ` +
    `(listening on ${c.host}; origins: ${Array.isArray(c.allowedOrigins) ? c.allowedOrigins.join(',') : c.allowedOrigins}); ` +
    `/dev/token: ${on(devFeaturesOn(c))}, demo page: ${on(demoOn(c))}` +
    `${devFeaturesOn(c) ? ' (the generated development secret is in use)' : ''}, test-only fault hook: off. Set NODE_ENV=production for a deployment.`
  );
}

/** A copy of `config` with the development secret filled in. */
export function withDevSecret(config: Readonly<Config>, secret: string): Readonly<Config> {
  return Object.freeze({ ...config, jwt: Object.freeze({ ...config.jwt, secret, secretIsDev: true }) });
}
