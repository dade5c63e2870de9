/**
 * The CLI as an operator meets it (`node dist/cli.js`, built by `npm run build`): --version and --help,
 * unknown flags and commands refused, `serve --port/--host` winning over PORT/HOST, database errors as
 * one line naming the cause and the remedy (the stack only at LOG_LEVEL=debug), and logs pretty on a
 * terminal (a pseudo-terminal from util-linux `script`), JSON when piped, LOG_FORMAT deciding either way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/instance.js';
import { freePort, waitFor } from '../helpers/ports.js';
import { PG_ADMIN_URL } from '../helpers/postgres.js';
import { TEST_SECRET } from '../helpers/tokens.js';
import { MIGRATION_NAMES as MIGRATIONS } from '../../src/adapters/store/migrations.js';

const CLI = join(ROOT, 'dist/cli.js');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** A line of a stack trace, as Node prints it, as pretty logs indent it, or inside a JSON string. */
const STACK_LINE = /    at /;
const COLOUR = /\x1b\[\d+m/;

let dataDir: string;
const children: ChildProcess[] = [];

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  dataDir = mkdtempSync(join(tmpdir(), 'sb-cli-'));
});
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A clean environment (nothing of the test runner's), the temporary data directory, and `env`. */
const environment = (env: Record<string, string>) => ({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dataDir, DATA_DIR: dataDir, ...env });

function start(command: string, args: string[], env: Record<string, string>): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(command, args, { cwd: ROOT, env: environment(env), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  const done = new Promise<Run>((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

/** `node dist/cli.js <args>`, its output piped. */
const cli = (args: string[], env: Record<string, string> = {}) => start(process.execPath, [CLI, ...args], env).done;

/** `node dist/cli.js <args>` on a pseudo-terminal; stdout is what the terminal showed. */
async function cliOnTerminal(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const line = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(' ');
  const run = await start('script', ['-qec', line, '/dev/null'], env).done;
  return { ...run, stdout: run.stdout.replace(/\r/g, '') };
}

const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');
const jsonLines = (text: string) => lines(text).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('the command line', () => {
  // A store that cannot open (a folder): a command line wrongly taken for `serve` fails at once instead of listening.
  const noServe = () => ({ DATABASE_URL: `sqlite:${dataDir}` });

  it.each(['--version', '-v', 'serve --version'])('%s prints the version of package.json', async (line) => {
    const r = await cli(line.split(' '), noServe());
    expect(r).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
  });

  it.each(['--help', '-h', 'help', 'migrate --help'])('%s prints the usage with every command', async (line) => {
    const r = await cli(line.split(' '), noServe());
    expect(r.code).toBe(0);
    for (const text of ['Usage: switchboard <command>', 'serve', '--port <port>', '--host <address>', 'migrate', 'token <userId>', '--version']) {
      expect(r.stdout).toContain(text);
    }
  });

  it.each([
    [['serve', '--prot', '4201'], "serve: Unknown option '--prot'", 'Usage: switchboard serve'],
    [['--prot', '4201'], "Unknown option '--prot'", 'Usage: switchboard <command>'],
    [['migrate', '--force'], "migrate: Unknown option '--force'", 'Usage: switchboard migrate'],
    [['migrate', 'now'], "migrate: Unexpected argument 'now'", 'Usage: switchboard migrate'],
    [['token', 'alice', '--root'], "token: Unknown option '--root'", 'Usage: switchboard token'],
    [['srve'], 'unknown command "srve"', 'Usage: switchboard <command>'],
    [['serve', '--port', ''], '--port needs a value', 'Usage: switchboard serve'],
  ])('%j is refused: exit 2, one line naming it, the usage, no stack', async (args, error, usage) => {
    const r = await cli(args, noServe());
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const [first, second] = lines(r.stderr);
    expect(first).toBe(`switchboard: ${error}`);
    expect(second).toContain(usage);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });

  it('an invalid --port is refused by the rule of PORT, naming the flag', async () => {
    const r = await cli(['serve', '--port', '70000']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('switchboard: invalid --port: PORT: must be at most 65535\n');
  });
});

describe('serve', () => {
  /** `serve` until /healthz answers on 127.0.0.1:`port`; then SIGTERM, and what it printed. */
  async function serveOnce(port: number, args: string[], env: Record<string, string>): Promise<Run & { health: unknown }> {
    const server = start(process.execPath, [CLI, 'serve', ...args], env);
    const answer = await waitFor(async () => {
      if (server.child.exitCode !== null) throw new Error(`serve exited with ${server.child.exitCode}: ${(await server.done).stdout}`);
      return fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
    }, `serve to answer on 127.0.0.1:${port}`, 20_000, 100);
    expect(answer.status).toBe(200);
    const health: unknown = await answer.json();
    server.child.kill('SIGTERM');
    return { ...(await server.done), health };
  }

  /** Every line logged about listening, from any component: the CLI's banner must be the only one. */
  const listeningLines = (stdout: string) => jsonLines(stdout).filter((l) => /listening/i.test(String(l['msg']))).map((l) => String(l['msg']));

  it('--port and --host win over PORT and HOST, and one line says where it listens and what to do next', async () => {
    const [port, envPort] = [await freePort(), await freePort()];
    // 127.0.0.2 is loopback too on Linux: an instance bound there does not answer on 127.0.0.1.
    const r = await serveOnce(port, ['--port', String(port), '--host', '127.0.0.1'], { PORT: String(envPort), HOST: '127.0.0.2' });
    expect(r.health).toMatchObject({ status: 'ok' });
    await expect(fetch(`http://127.0.0.2:${envPort}/healthz`)).rejects.toThrow();
    expect(r.code).toBe(0);
    const banner = listeningLines(r.stdout);
    expect(banner).toEqual([
      expect.stringMatching(new RegExp(`^Switchboard ${VERSION} listening on http://127\\.0\\.0\\.1:${port} \\(development, SQLite .*switchboard\\.db, single instance without Redis\\)\\. Next: `)),
    ]);
    expect(banner[0]).toContain(`open http://127.0.0.1:${port}/ for the demo, or get a token with \`DATA_DIR=${dataDir} node dist/cli.js token alice\``);
  });

  it('in production the line points at the probes and the metrics', async () => {
    const port = await freePort();
    const r = await serveOnce(port, [], { PORT: String(port), HOST: '127.0.0.1', NODE_ENV: 'production', JWT_SECRET: TEST_SECRET });
    const url = `http://127.0.0.1:${port}`;
    expect(listeningLines(r.stdout)).toEqual([
      `Switchboard ${VERSION} listening on ${url} (production, SQLite ${dataDir}/switchboard.db, single instance without Redis). Probes: ${url}/healthz, ${url}/readyz; metrics: ${url}/metrics.`,
    ]);
  });
});

describe('database errors at start-up', () => {
  const random = randomBytes(4).toString('hex');
  const pg = new URL(PG_ADMIN_URL);
  let closedPort: number;
  beforeAll(async () => {
    closedPort = await freePort();
  });

  /** The one FATAL line of a failed start, and the whole output. */
  async function failedStart(args: string[], env: Record<string, string>): Promise<{ fatal: string; output: string }> {
    const r = await cli(args, env);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const fatal = jsonLines(r.stdout).filter((l) => l['level'] === 60);
    expect(fatal).toHaveLength(1);
    return { fatal: String(fatal[0]!['msg']), output: r.stdout + r.stderr };
  }

  const cases = () => [
    {
      name: 'a closed port',
      url: `postgres://postgres@127.0.0.1:${closedPort}/switchboard`,
      line: `cannot reach PostgreSQL at 127.0.0.1:${closedPort}: connection refused. Is it running? Check DATABASE_URL.`,
    },
    {
      name: 'a missing database',
      url: `postgres://postgres@${pg.host}/does_not_exist_${random}`,
      line: `PostgreSQL at ${pg.host} has no database "does_not_exist_${random}". Create it (createdb does_not_exist_${random}) or fix the database name in DATABASE_URL.`,
    },
    {
      // This machine's PostgreSQL trusts every password; an unknown role is the authentication failure it gives (28000).
      name: 'an unknown role',
      url: `postgres://no_role_${random}:secret-${random}@${pg.host}/postgres`,
      line: `PostgreSQL at ${pg.host}: authentication failed (role "no_role_${random}" does not exist). Check the user and password in DATABASE_URL.`,
    },
  ];

  it.each(['migrate', 'serve'])('%s names the cause and the remedy in one line, without a stack', async (command) => {
    for (const c of cases()) {
      const { fatal, output } = await failedStart([command], { DATABASE_URL: c.url });
      expect(fatal, c.name).toBe(c.line);
      expect(output, c.name).not.toMatch(STACK_LINE);
      expect(output, c.name).not.toContain(`secret-${random}`);
    }
  });

  it('a failure that is not the store\'s is one line too, with the messages of its causes', async () => {
    const { fatal, output } = await failedStart(['serve'], { REDIS_URL: `redis://127.0.0.1:${closedPort}` });
    expect(fatal).toMatch(new RegExp(`^start-up failed: Cannot reach Redis at redis://127\\.0\\.0\\.1:${closedPort}: .+ Start Redis or unset REDIS_URL`));
    expect(output).not.toMatch(STACK_LINE);
  });

  it('LOG_LEVEL=debug adds the stack', async () => {
    const url = cases()[0]!.url;
    const { fatal, output } = await failedStart(['migrate'], { DATABASE_URL: url, LOG_LEVEL: 'debug' });
    expect(fatal).toBe(cases()[0]!.line);
    const detail = jsonLines(output).find((l) => l['level'] === 20 && l['err'] !== undefined);
    expect((detail?.['err'] as { stack?: string } | undefined)?.stack).toMatch(STACK_LINE);
  });

  it('pretty logs show the same line, and the stack only at LOG_LEVEL=debug', async () => {
    const env = { DATABASE_URL: cases()[0]!.url, LOG_FORMAT: 'pretty' };
    const plain = await cli(['migrate'], env);
    expect(plain.code).toBe(1);
    expect(lines(plain.stdout)).toEqual([expect.stringMatching(/^\[[\d:.]+\] FATAL: cannot reach PostgreSQL at .* Check DATABASE_URL\.$/)]);
    const debug = await cli(['migrate'], { ...env, LOG_LEVEL: 'debug' });
    expect(debug.stdout).toMatch(/DEBUG: migration failed, in detail: migrate failed \(unavailable\): connect ECONNREFUSED/);
    expect(debug.stdout).toMatch(STACK_LINE);
  });
});

describe('log format', () => {
  /** `migrate` on a fresh SQLite file logs a few lines and exits. */
  const migrateEnv = (env: Record<string, string> = {}) => ({ DATABASE_URL: `sqlite:${join(dataDir, `${randomBytes(4).toString('hex')}.db`)}`, ...env });
  const PRETTY_LINE = /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: /;

  it('piped: JSON lines with the instance id', async () => {
    const r = await cli(['migrate'], migrateEnv({ INSTANCE_ID: 'cli-test' }));
    expect(r.code).toBe(0);
    const logged = jsonLines(r.stdout);
    expect(logged.map((l) => l['msg'])).toEqual([...MIGRATIONS.map(() => 'migration applied'), 'database schema is up to date']);
    expect(logged.filter((l) => l['migration'] !== undefined).map((l) => l['migration'])).toEqual(MIGRATIONS);
    expect(logged.every((l) => l['instanceId'] === 'cli-test')).toBe(true);
  });

  it('on a terminal: pretty and coloured, one line per event, no instance id', async () => {
    const r = await cliOnTerminal(['migrate'], migrateEnv({ INSTANCE_ID: 'cli-test' }));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(COLOUR);
    // Without the colours, as a reader sees it.
    const shown = lines(r.stdout.replace(/\x1b\[\d+m/g, ''));
    expect(shown).toEqual([
      ...MIGRATIONS.map((name) => expect.stringMatching(new RegExp(`^\\[[\\d:.]+\\] INFO: \\(store\\) migration applied \\{"migration":"${name}"\\}$`))),
      expect.stringMatching(/^\[[\d:.]+\] INFO: database schema is up to date$/),
    ]);
    expect(r.stdout).not.toContain('cli-test');
  });

  it('on a terminal in production: JSON', async () => {
    const r = await cliOnTerminal(['migrate'], migrateEnv({ NODE_ENV: 'production', JWT_SECRET: TEST_SECRET }));
    expect(r.code).toBe(0);
    expect(jsonLines(r.stdout).map((l) => l['msg'])).toContain('database schema is up to date');
  });

  it('LOG_FORMAT=json on a terminal: JSON', async () => {
    const r = await cliOnTerminal(['migrate'], migrateEnv({ LOG_FORMAT: 'json' }));
    expect(r.code).toBe(0);
    expect(jsonLines(r.stdout).map((l) => l['msg'])).toContain('database schema is up to date');
  });

  it('LOG_FORMAT=pretty piped: pretty lines without colours', async () => {
    const r = await cli(['migrate'], migrateEnv({ LOG_FORMAT: 'pretty' }));
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(COLOUR);
    const shown = lines(r.stdout);
    expect(shown).toHaveLength(MIGRATIONS.length + 1);
    for (const l of shown) expect(l).toMatch(PRETTY_LINE);
  });

  /** An error logged by a component, as the store logs a failed query, through the built logger. */
  function logError(level: string): Promise<Run> {
    const script = [
      `import { createLogger } from ${JSON.stringify(join(ROOT, 'dist/logger.js'))};`,
      `const logger = createLogger({ level: '${level}', instanceId: 'x', format: 'pretty' });`,
      `logger.child({ component: 'store' }).error({ err: new Error('disk full') }, 'store query failed');`,
    ].join('\n');
    return start(process.execPath, ['--input-type=module', '-e', script], {}).done;
  }

  it('pretty errors: the message on the line, the stack only at debug', async () => {
    const info = await logError('info');
    expect(lines(info.stdout)).toEqual([expect.stringMatching(/^\[[\d:.]+\] ERROR: \(store\) store query failed: disk full$/)]);
    const debug = await logError('debug');
    expect(debug.stdout).toMatch(/ERROR: \(store\) store query failed: disk full\n\s+Error: disk full\n/);
    expect(debug.stdout).toMatch(STACK_LINE);
  });
});
