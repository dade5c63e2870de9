#!/usr/bin/env node
import { relative, sep } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createApp, type App } from './app.js';
import { ConfigError, ENV_TABLE, faultHookArmed, loadConfig, type Config, type CrashAfterStoreSpec } from './config.js';
import { HsTokenIssuer } from './adapters/auth/jose.js';
import { redact } from './adapters/redis/connection.js';
import { causeChain, describeStore, describeStoreError } from './adapters/store/describe-error.js';
import { openStore } from './adapters/store/index.js';
import { resolveJwt } from './dev-secret.js';
import { createLogger, type Logger } from './logger.js';
import { VERSION } from './version.js';
import type { Message } from 'switchboard-client/protocol';

const HELP = `switchboard ${VERSION}: a horizontally scalable real-time chat server

Usage: switchboard <command> [options]

Commands:
  serve                    start an instance (the default; configured by environment variables)
      --port <port>          listen port (wins over PORT)
      --host <address>       listen address (wins over HOST)
  migrate                  create or upgrade the database schema, then exit
  token <userId>           print a signed JWT for development and scripts
      --channels a,b         private channels the token grants
      --admin                add role: admin
      --name <name>          display name
      --ttl <seconds>        lifetime (default 3600)
  help                     show this help

Options (any command):
  -h, --help               show this help
  -v, --version            print the version

Configuration: environment variables, see docs/configuration.md (PORT, DATABASE_URL, REDIS_URL,
JWT_SECRET, ALLOWED_ORIGIN, LOG_FORMAT, ...). With none set it runs one instance on :3000 with SQLite in ./data.`;

const COMMON = { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } } as const;

/** Each command's options (parsed strictly: anything else is refused) and its one usage line. */
const COMMANDS = {
  serve: { usage: 'switchboard serve [--port <port>] [--host <address>]', options: { port: { type: 'string' }, host: { type: 'string' } } },
  migrate: { usage: 'switchboard migrate', options: {} },
  token: {
    usage: 'switchboard token <userId> [--channels a,b] [--admin] [--name <name>] [--ttl <seconds>]',
    options: { channels: { type: 'string' }, admin: { type: 'boolean' }, name: { type: 'string' }, ttl: { type: 'string' } },
  },
  help: { usage: 'switchboard help', options: {} },
} as const;

type Command = keyof typeof COMMANDS;

/** The serve flags that set a variable of the environment table; a flag wins over the variable. */
const FLAG_VARIABLES = { port: 'PORT', host: 'HOST' } as const;

type Flags = Partial<Record<keyof typeof FLAG_VARIABLES, string>>;

interface Invocation {
  command: Command;
  values: Record<string, unknown>;
  positionals: string[];
}

/** A configuration error, or a command line this CLI does not take: exit code 2. */
function fail(message: string): never {
  process.stderr.write(`switchboard: ${message}\n`);
  process.exit(2);
}

function usageError(message: string, command?: Command): never {
  const usage = command ? COMMANDS[command].usage : 'switchboard <command> [options]';
  fail(`${message}\nUsage: ${usage}\nRun "switchboard --help" for every command and option.`);
}

const isCommand = (name: string): name is Command => Object.hasOwn(COMMANDS, name);

/** An option's value when it is a string option that was given. */
const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** The command (serve when the line starts with an option or is empty) and its strictly parsed options. */
function invocation(argv: string[]): Invocation {
  const [first] = argv;
  const named = first !== undefined && !first.startsWith('-');
  const command = named ? first : 'serve';
  if (!isCommand(command)) usageError(`unknown command "${command}"`);
  const args = named ? argv.slice(1) : argv;
  try {
    const options: ParseArgsConfig['options'] = { ...COMMON, ...COMMANDS[command].options };
    const { values, positionals } = parseArgs({ args, options, strict: true, allowPositionals: command === 'token' });
    return { command, values, positionals };
  } catch (err) {
    // parseArgs explains in its first sentence ("Unknown option '--prot'"); the rest is about positionals.
    const reason = (err as Error).message.split('. ')[0]!;
    if (named) usageError(`${command}: ${reason}`, command);
    usageError(reason);
  }
}

/** The environment, with the serve flags given as overrides of their variables. */
function config(flags: Flags = {}): Readonly<Config> {
  const overrides: Record<string, string> = {};
  for (const [flag, value] of Object.entries(flags) as [keyof Flags, string | undefined][]) {
    if (value === '') usageError(`--${flag} needs a value`, 'serve');
    if (value !== undefined) overrides[FLAG_VARIABLES[flag]] = value;
  }
  try {
    return loadConfig({ ...process.env, ...overrides });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const flag = (Object.keys(FLAG_VARIABLES) as (keyof Flags)[]).find((f) => FLAG_VARIABLES[f] === err.variable && flags[f] !== undefined);
    fail(`${flag ? `invalid --${flag}` : 'invalid configuration'}: ${err.message}`);
  }
}

const rootLogger = (cfg: Readonly<Config>): Logger =>
  createLogger({ level: cfg.logLevel, instanceId: cfg.instanceId, format: cfg.logFormat, production: cfg.production });

/**
 * A start-up failure as one line: the store's cause and remedy when it is one, else the messages of
 * the error and its causes. The stack only at LOG_LEVEL=debug.
 */
function startFailed(logger: Logger, err: unknown, databaseUrl: string, what: string): never {
  const problem = describeStoreError(err, databaseUrl);
  const messages = causeChain(err).map((e) => (e instanceof Error ? e.message : String(e)));
  logger.fatal(problem ? `${problem.cause}. ${problem.remedy}` : `${what}: ${messages.join(': ')}`);
  logger.debug({ err }, `${what}, in detail`);
  process.exit(1);
}

/** Exit code of a crash the test-only fault hook caused (the chaos suite tells it from a real crash). */
const FAULT_EXIT_CODE = 86;

/** Whether the fault hook fires at this stored message. */
function armedBy(spec: CrashAfterStoreSpec): () => boolean {
  switch (spec.kind) {
    case 'signal': {
      let signalled = false;
      process.on('SIGUSR2', () => (signalled = true));
      return () => signalled;
    }
    case 'nth': {
      let count = 0;
      return () => ++count === spec.n;
    }
    case 'probability':
      return () => Math.random() < spec.p;
  }
}

/**
 * Test-only fault hook, for the chaos suite: SWITCHBOARD_FAULT_CRASH_AFTER_STORE makes the process die
 * after a message is stored and before it is broadcast or acknowledged. Armed only when a test asks for
 * it with NODE_ENV=test; ignored (with a warning) otherwise.
 */
function crashAfterStoreHook(cfg: Readonly<Config>, logger: Logger): ((m: Message) => void) | undefined {
  const spec = cfg.faultCrashAfterStore;
  if (!spec) return undefined;
  if (!faultHookArmed(cfg)) {
    logger.warn('SWITCHBOARD_FAULT_CRASH_AFTER_STORE is set but ignored: the test-only fault hook arms only with NODE_ENV=test');
    return undefined;
  }
  const armed = armedBy(spec);
  logger.warn({ spec }, 'test-only fault hook on: this process will crash after storing a message (SWITCHBOARD_FAULT_CRASH_AFTER_STORE)');
  return (m) => {
    if (!armed()) return;
    process.stderr.write(`switchboard: fault hook: crashing after storing ${m.id} (seq ${m.seq} of ${m.channelId}), before broadcasting it\n`);
    process.exit(FAULT_EXIT_CODE);
  };
}

/** The command that prints a token with this instance's development secret, as this CLI was started. */
function tokenCommand(cfg: Readonly<Config>): string {
  const script = process.argv[1] ?? 'dist/cli.js';
  const cli = script.includes(`${sep}node_modules${sep}`) ? 'npx switchboard' : `node ${relative(process.cwd(), script)}`;
  const dataDir = cfg.dataDir === ENV_TABLE.DATA_DIR.fallback() ? '' : `DATA_DIR=${cfg.dataDir} `;
  return `${dataDir}${cli} token alice`;
}

/** The one start-up line: where it listens, how it runs, and the next step. */
function banner(cfg: Readonly<Config>, url: string): string {
  const mode = cfg.production ? 'production' : 'development';
  const redis = cfg.redisUrl ? `Redis ${redact(cfg.redisUrl)}` : 'single instance without Redis';
  const next = cfg.jwt.secretIsDev
    ? `Next: ${cfg.demo ? `open ${url}/ for the demo, or ` : ''}get a token with \`${tokenCommand(cfg)}\` (or POST ${url}/dev/token).`
    : `Probes: ${url}/healthz, ${url}/readyz; metrics: ${url}/metrics.`;
  return `Switchboard ${VERSION} listening on ${url} (${mode}, ${describeStore(cfg.databaseUrl)}, ${redis}). ${next}`;
}

function stopOnSignals(app: App, logger: Logger): void {
  const { shutdownTimeoutMs } = app.config;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'already shutting down; waiting for the drain to finish');
      return;
    }
    stopping = true;
    logger.info({ signal, timeoutMs: shutdownTimeoutMs }, 'shutting down gracefully');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs: shutdownTimeoutMs }, 'shutdown timed out; exiting with code 1');
      process.exit(1);
    }, shutdownTimeoutMs);
    timer.unref();
    app.drain().then(
      () => {
        logger.info('shutdown complete');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function serve(flags: Flags): Promise<void> {
  const cfg = config(flags);
  const logger = rootLogger(cfg);
  const afterStore = crashAfterStoreHook(cfg, logger);
  const app = await createApp(cfg, { logger, ...(afterStore ? { afterStore } : {}) }).catch((err: unknown) =>
    startFailed(logger, err, cfg.databaseUrl, 'start-up failed'),
  );
  const url = await app.listen().catch((err: NodeJS.ErrnoException) => {
    const flag = flags.port === undefined ? 'set PORT' : 'pass --port';
    logger.fatal({ reason: err.message }, err.code === 'EADDRINUSE' ? `port ${cfg.port} is in use; ${flag} to another one` : 'cannot listen');
    return process.exit(1);
  });
  const { databaseUrl, redisUrl, defaultChannels, production } = app.config;
  logger.info({ startup: { url, production, store: describeStore(databaseUrl), redis: Boolean(redisUrl), channels: defaultChannels } }, banner(app.config, url));
  if (redisUrl && databaseUrl.startsWith('sqlite:')) {
    logger.warn(
      'REDIS_URL is set but the store is SQLite: instances share rooms, yet each keeps its own history unless they all open the same file on one host. Set DATABASE_URL=postgres://… for several hosts.',
    );
  }
  stopOnSignals(app, logger);
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled promise rejection'));
}

async function migrate(): Promise<void> {
  const cfg = config();
  const logger = rootLogger(cfg);
  try {
    const store = openStore(cfg.databaseUrl, logger.child({ component: 'store' }), { lockTimeoutMs: cfg.sqliteLockTimeoutMs });
    try {
      await store.migrate();
    } finally {
      await store.close();
    }
  } catch (err) {
    startFailed(logger, err, cfg.databaseUrl, 'migration failed');
  }
  logger.info('database schema is up to date');
}

async function token(values: Invocation['values'], positionals: string[]): Promise<void> {
  const [userId, ...extra] = positionals;
  if (!userId || extra.length > 0) usageError('token takes one user id', 'token');
  const cfg = resolveJwt(config());
  const secret = cfg.jwt.secret;
  if (!secret) fail('token signs with JWT_SECRET (HS256); this configuration has only public keys');
  const ttl = values['ttl'] === undefined ? 3600 : Number(values['ttl']);
  if (!Number.isInteger(ttl) || ttl < 1) usageError('--ttl takes a whole number of seconds', 'token');
  const name = text(values['name']);
  const channels = text(values['channels']);
  const jwt = await new HsTokenIssuer(secret, cfg.jwt).issue({
    userId,
    ttlSeconds: ttl,
    ...(name ? { name } : {}),
    ...(values['admin'] ? { admin: true } : {}),
    ...(channels ? { channels: channels.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
  });
  process.stdout.write(`${jwt}\n`);
}

const { command, values, positionals } = invocation(process.argv.slice(2));
if (values['version']) {
  process.stdout.write(`${VERSION}\n`);
} else if (values['help'] || command === 'help') {
  process.stdout.write(`${HELP}\n`);
} else if (command === 'serve') {
  await serve({ port: text(values['port']), host: text(values['host']) });
} else if (command === 'migrate') {
  await migrate();
} else {
  await token(values, positionals).catch((err: Error) => fail(err.message));
}
