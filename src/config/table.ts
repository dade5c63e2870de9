import { hostname } from 'node:os';
import { z } from 'zod';
import * as rule from './rules.js';

/** What computed defaults depend on: the mode (NODE_ENV) and DATA_DIR. */
export interface DefaultContext {
  production: boolean;
  dataDir: string;
}

/** One environment variable: its rule, its default and one line of documentation. */
export interface EnvVariable {
  /** Validates and converts the variable's text; only set, non-empty values reach it. */
  readonly rule: z.ZodType;
  /** The default as docs/configuration.md shows it. */
  readonly defaultDoc: string;
  /** The value when the variable is unset. */
  readonly fallback: (context: DefaultContext) => unknown;
  /** What it means, in one line of docs/configuration.md. */
  readonly doc: string;
}

/** A default written as the variable's own text: it goes through the rule and is shown as is. */
const byDefault = <T>(r: z.ZodType<T>, defaultText: string, doc: string) => ({
  rule: r,
  defaultDoc: `\`${defaultText}\``,
  fallback: (): T => r.parse(defaultText),
  doc,
});

/** A default computed from the context. */
const computed = <T, D>(r: z.ZodType<T>, defaultDoc: string, doc: string, fallback: (c: DefaultContext) => D) => ({ rule: r, defaultDoc, fallback, doc });

/** No default: unset stays undefined (`defaultDoc` says what that means). */
const unset = <T>(r: z.ZodType<T>, defaultDoc: string, doc: string) => ({ rule: r, defaultDoc, fallback: (): undefined => undefined, doc });

/**
 * The environment table: every variable the server reads, with its rule, default and doc.
 * docs/configuration.md lists exactly these (test/unit/config-docs.test.ts checks it).
 */
export const ENV_TABLE = {
  // The contract's variables.
  PORT: byDefault(rule.int(0, 65535), '3000', 'listen port'),
  HOST: computed(rule.text, 'development: `127.0.0.1`, production: `0.0.0.0`', 'listen address; an explicit `HOST` always wins', (c) => (c.production ? '0.0.0.0' : '127.0.0.1')),
  INSTANCE_ID: computed(rule.instanceId, '`<hostname>-<pid>`', 'in logs, `/healthz`, and the `instance` field of `joined`; 1-64 characters of `A-Z a-z 0-9 _ . : -`', () => `${hostname()}-${process.pid}`),
  DATABASE_URL: computed(rule.databaseUrl, '`sqlite:./data/switchboard.db`', '`sqlite:<path>` (`sqlite::memory:` for throwaway runs) or `postgres://…`; the default lies under `DATA_DIR`', (c) => `sqlite:${c.dataDir}/switchboard.db`),
  REDIS_URL: unset(rule.redisUrl, 'unset', '`redis://…` or `rediss://…`; unset: a single instance; set: instances share rooms, presence and limits'),
  JWT_SECRET: unset(rule.hmacSecret, 'dev: generated, kept in `./data/jwt-secret`', 'HS256 key: the UTF-8 bytes of the string, at least 32'),
  JWT_PUBLIC_KEY: unset(rule.publicKey, 'unset', 'PEM public key; RSA → RS256, P-256 EC → ES256 (`\\n` escapes are accepted)'),
  JWKS_URL: unset(rule.httpUrl, 'unset', 'JWKS endpoint for RS256/ES256 (keys fetched with a 5 s timeout, cached)'),
  JWT_ISSUER: unset(rule.text, 'unset', 'the `iss` a token must carry, checked when set'),
  JWT_AUDIENCE: unset(rule.text, 'unset', 'the `aud` a token must carry, checked when set'),
  ALLOWED_ORIGIN: computed(
    rule.origins,
    'dev: any localhost origin; production: same origin',
    'comma list of exact origins for polling (CORS) and WebSocket upgrades (`Origin`); requests without `Origin` are allowed; `*` is refused',
    (c): 'same-origin' | 'dev-localhost' => (c.production ? 'same-origin' : 'dev-localhost'),
  ),
  PING_INTERVAL_MS: byDefault(rule.int(1000, 600_000), '10000', 'Engine.IO heartbeat interval'),
  PING_TIMEOUT_MS: byDefault(rule.int(1000, 600_000), '20000', 'Engine.IO heartbeat timeout'),
  SHUTDOWN_NOTICE_MS: byDefault(rule.int(0, 600_000), '2000', 'between `server_shutdown` and the forced disconnect; below `SHUTDOWN_TIMEOUT_MS`'),
  SHUTDOWN_TIMEOUT_MS: byDefault(rule.int(1000, 3_600_000), '30000', 'hard limit of a drain, then exit code 1'),
  MAX_MESSAGE_LENGTH: byDefault(rule.int(1, 100_000), '4000', 'characters (code points) of `content`'),
  MAX_FRAME_BYTES: byDefault(rule.int(1024, 100 * 1024 * 1024), '65536', 'Socket.IO `maxHttpBufferSize` and the HTTP body limit'),
  DEFAULT_CHANNELS: byDefault(rule.channelIds, 'general,random', 'public channels created at start-up'),
  NODE_ENV: unset(
    z.string(),
    'unset (development)',
    '`production`: refuses to start without `JWT_SECRET`/`JWT_PUBLIC_KEY`/`JWKS_URL`; `test`: arms the test-only fault hook; another value than `production`, `development` or `test` logs a warning naming what is enabled. In every mode `/dev/token` and the demo exist only on the generated development secret',
  ),
  // Switchboard's additions.
  LOG_LEVEL: byDefault(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'info', 'pino level: `fatal`, `error`, `warn`, `info`, `debug`, `trace`, `silent`'),
  LOG_FORMAT: byDefault(
    rule.logFormat,
    'auto',
    '`pretty` (one line per event, coloured on a terminal), `json` (pino JSON lines), or `auto`: pretty when stdout is a terminal and `NODE_ENV` is not `production`, else json',
  ),
  DATA_DIR: byDefault(rule.text, './data', 'where the default SQLite file and the development secret live'),
  REDIS_ADAPTER: byDefault(z.enum(['sharded', 'classic', 'streams']), 'sharded', '`sharded` (Redis 7 sharded pub/sub, dynamic subscriptions), `classic`, or `streams`; see [decisions.md](decisions.md)'),
  TRUST_PROXY: unset(rule.list, 'unset', 'comma list of proxy addresses/CIDRs (or `loopback`) whose `X-Forwarded-For` is believed for client IPs'),
  PRESENCE_TTL_MS: byDefault(rule.int(1500, 30_000), '15000', "how long a dead instance's presence outlives its last heartbeat (heartbeat every third of it)"),
  DEMO: computed(
    rule.bool,
    'on in development',
    'serve the demo page at `/` (`true`/`false`); only while the server runs on the generated development secret, whose `/dev/token` is its sign-in: never in production, never with `JWT_SECRET`, `JWT_PUBLIC_KEY` or `JWKS_URL`',
    (c) => !c.production,
  ),
  RATE_LIMIT_MESSAGES: byDefault(rule.rate, '100/10s', 'messages per user; cluster-wide with Redis'),
  RATE_LIMIT_EVENTS: byDefault(rule.rate, '300/10s', 'events of any kind per connection; a client at twice the limit is disconnected'),
  RATE_LIMIT_HANDSHAKES: byDefault(rule.rate, '120/1m', 'connection attempts per client IP'),
  MAX_CONNECTIONS_PER_USER: byDefault(rule.int(1, 100_000), '50', 'simultaneous connections of one user on one instance'),
  MAX_CHANNELS_PER_SOCKET: byDefault(rule.int(1, 100_000), '200', 'channels one connection may join'),
  MAX_OUTGOING_BYTES: byDefault(rule.int(65_536, 1024 * 1024 * 1024), '16777216', 'bytes (16 MiB by default) queued towards one client before it is dropped as a slow consumer'),
  MAX_OUTGOING_PACKETS: byDefault(rule.int(16, 10_000_000), '10000', 'packets queued towards one client before it is dropped as a slow consumer'),
  RATE_LIMIT_READS: byDefault(rule.rate, '1000/10s', 'read budget per user, in points (cluster-wide with Redis): a `history` page costs 1 per 10 messages of its `limit`, a `presence` read 1 plus 1 per 100 users of the channel'),
  PRESENCE_MAX_USERS: byDefault(rule.int(1, 100_000), '1000', 'most users a `presence` ack lists; a larger channel answers the first ones by userId with `total` and `truncated: true`'),
  PRESENCE_CACHE_MS: byDefault(rule.int(0, 60_000), '1000', "how long an instance reuses a channel's presence list (its own joins and leaves apply at once); `0`: no cache"),
  PRESENCE_NOTICE_INTERVAL_MS: byDefault(rule.int(0, 60_000), '1000', 'at most one `user_joined`/`user_left` per user and channel per interval (per instance); a change within it is told at its end, if still true'),
  SQLITE_LOCK_TIMEOUT_MS: byDefault(rule.int(0, 600_000), '5000', 'how long a SQLite call retries a database locked by another process, without blocking, before answering `UNAVAILABLE`'),
  HTTP_REQUEST_TIMEOUT_MS: byDefault(
    rule.int(1000, 3_600_000),
    '30000',
    'time a client has to send a whole HTTP request, headers and body (REST and Engine.IO polling alike); then the connection is closed. A long-poll is not cut: its request is complete, only the answer waits (up to `PING_INTERVAL_MS`)',
  ),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: byDefault(rule.int(1000, 3_600_000), '72000', 'how long an idle keep-alive HTTP connection stays open; keep it above the idle timeout of a load balancer in front (60 s on most)'),
  MAX_HTTP_CONNECTIONS_PER_IP: byDefault(rule.int(1, 10_000_000), '1000', 'simultaneous TCP connections of one client address (the `TRUST_PROXY`-vouched address of its first request); one more is answered 429 and closed'),
  // For tests only.
  SWITCHBOARD_FAULT_CRASH_AFTER_STORE: unset(
    rule.crashAfterStore,
    'unset',
    'test only (the chaos suite): exit with code 86 after storing a message, before broadcasting or acknowledging it: `0.01` with that probability per message, `nth:50` at the 50th, `signal` at the first after a SIGUSR2; armed only with `NODE_ENV=test`, ignored otherwise',
  ),
} satisfies Record<string, EnvVariable>;

export type EnvName = keyof typeof ENV_TABLE;

/** Every variable's value, defaults applied. */
export type Env = { [K in EnvName]: z.output<(typeof ENV_TABLE)[K]['rule']> | ReturnType<(typeof ENV_TABLE)[K]['fallback']> };
