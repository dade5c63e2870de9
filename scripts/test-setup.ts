/**
 * The first step of `npm test`: make this machine able to run every suite, or say exactly what to do.
 *
 * - System binaries (redis-server, nginx, HAProxy, Chromium): the missing ones are installed with
 *   apt-get when running as root on Debian; otherwise the exact command is printed and the run stops.
 * - PostgreSQL (`TEST_PG_URL`, default the local server with trust auth): started with pg_ctlcluster
 *   when it is installed here but not running; otherwise the run stops with what to do.
 *
 * Nothing is skipped: a suite that needs a missing part would fail anyway, later and less clearly.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import pg from 'pg';
import { locateBinary, SYSTEM_BINARIES, type SystemBinary } from './lib/binaries.js';

const PG_URL = process.env['TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const isRoot = process.getuid?.() === 0;

function say(line: string): void {
  process.stdout.write(`test set-up: ${line}\n`);
}
function stop(lines: string[]): never {
  for (const line of lines) process.stderr.write(`test set-up: ${line}\n`);
  process.exit(1);
}

function installMissingBinaries(): void {
  const missing = (Object.keys(SYSTEM_BINARIES) as SystemBinary[]).filter((name) => !locateBinary(name));
  if (missing.length === 0) return say(`system binaries present (${Object.keys(SYSTEM_BINARIES).join(', ')})`);
  const pkgs = [...new Set(missing.map((name) => SYSTEM_BINARIES[name].pkg))];
  const command = `apt-get update && apt-get install -y ${pkgs.join(' ')}`;
  if (!isRoot || !existsSync('/usr/bin/apt-get')) {
    stop([`missing: ${missing.join(', ')}.`, `Install them, then run npm test again: sudo sh -c '${command}'`]);
  }
  say(`installing ${pkgs.join(', ')} with apt-get (missing: ${missing.join(', ')}); this takes a minute or two`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', ...pkgs]]) {
    const run = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
    if (run.status !== 0) stop([`apt-get ${args.join(' ')} failed (exit ${run.status}).`, `Run it yourself and retry: ${command}`]);
  }
  const still = missing.filter((name) => !locateBinary(name));
  if (still.length > 0) stop([`still missing after apt-get: ${still.join(', ')}`]);
  say(`installed ${pkgs.join(', ')}`);
}

async function pgAnswers(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function ensurePostgres(): Promise<void> {
  const shown = PG_URL.replace(/\/\/([^:@/]*):[^@]*@/, '//$1:***@');
  let problem = await pgAnswers();
  if (!problem) return say(`PostgreSQL answers at ${shown}`);
  const local = /@(127\.0\.0\.1|localhost)(:5432)?\//.test(PG_URL);
  const versions = existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql') : [];
  if (local && isRoot && versions.length > 0 && locateCommand('pg_ctlcluster')) {
    say(`PostgreSQL does not answer (${problem}); starting cluster ${versions[0]}/main`);
    spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', versions[0]!, 'main', 'start'], { stdio: 'inherit' });
    for (let i = 0; i < 30 && (problem = await pgAnswers()); i++) await new Promise((r) => setTimeout(r, 500));
    if (!problem) return say(`PostgreSQL started and answers at ${shown}`);
  }
  stop([
    `PostgreSQL does not answer at ${shown}: ${problem}`,
    'The integration tests need a PostgreSQL server with trust auth (each test file creates and drops its own database).',
    'Start one (Debian: apt-get install -y postgresql && pg_ctlcluster 15 main start), or point TEST_PG_URL at one.',
  ]);
}

function locateCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

installMissingBinaries();
await ensurePostgres();
