/**
 * Why a store could not open, for the operator reading one line at start-up: what went wrong and what
 * to do. The store rejects with StoreError, the driver's error in its `cause` chain; SQLite may also
 * throw the driver's (or the file system's) error directly.
 */
export interface StoreProblem {
  /** What went wrong, e.g. `cannot reach PostgreSQL at 127.0.0.1:5999: connection refused`. */
  cause: string;
  /** What to do, e.g. `Is it running? Check DATABASE_URL.` */
  remedy: string;
}

interface DriverError {
  code?: unknown;
  message?: unknown;
  path?: unknown;
}

const MAX_DEPTH = 10;

/** The error and its causes, outermost first. */
export function causeChain(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = err; e !== undefined && e !== null && chain.length < MAX_DEPTH; e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}

const codeOf = (e: DriverError): string => (typeof e.code === 'string' ? e.code : '');
const messageOf = (e: DriverError): string => (typeof e.message === 'string' ? e.message : '');

interface PostgresTarget {
  /** `host:port` */
  at: string;
  database: string;
}

function postgresTarget(databaseUrl: string): PostgresTarget {
  try {
    const url = new URL(databaseUrl);
    const database = decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username);
    return { at: `${url.hostname || 'localhost'}:${url.port || '5432'}`, database };
  } catch {
    return { at: 'the DATABASE_URL address', database: 'the DATABASE_URL database' };
  }
}

const REACHABLE = 'Is it running and reachable from here (network, firewall)? Check DATABASE_URL.';
const RESOLVE = 'Check the host name in DATABASE_URL.';

/** Connection errors by code: what happened, and the remedy. */
const UNREACHABLE: Record<string, readonly [string, string]> = {
  ECONNREFUSED: ['connection refused', 'Is it running? Check DATABASE_URL.'],
  ETIMEDOUT: ['connection timed out', REACHABLE],
  EHOSTUNREACH: ['host unreachable', REACHABLE],
  ENETUNREACH: ['network unreachable', REACHABLE],
  ENOTFOUND: ['host not found', RESOLVE],
  EAI_AGAIN: ['host name lookup failed', RESOLVE],
};

/** pg's and pg-pool's connect timeouts, errors without a code. */
const PG_CONNECT_TIMEOUT = /^(timeout expired|timeout exceeded when trying to connect|Connection terminated due to connection timeout)/;

function postgresProblem(e: DriverError, t: PostgresTarget): StoreProblem | undefined {
  const code = codeOf(e);
  const message = messageOf(e);
  const unreachable = UNREACHABLE[code] ?? (PG_CONNECT_TIMEOUT.test(message) ? UNREACHABLE['ETIMEDOUT'] : undefined);
  if (unreachable) return { cause: `cannot reach PostgreSQL at ${t.at}: ${unreachable[0]}`, remedy: unreachable[1] };
  if (code === '3D000') {
    return { cause: `PostgreSQL at ${t.at} has no database "${t.database}"`, remedy: `Create it (createdb ${t.database}) or fix the database name in DATABASE_URL.` };
  }
  if (code === '28P01' || code === '28000') {
    return { cause: `PostgreSQL at ${t.at}: authentication failed (${message})`, remedy: 'Check the user and password in DATABASE_URL.' };
  }
  if (/client password must be a string/.test(message)) {
    return { cause: `PostgreSQL at ${t.at}: authentication failed (the server asks for a password, DATABASE_URL has none)`, remedy: 'Add the password to DATABASE_URL.' };
  }
  return undefined;
}

const NO_PERMISSION: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
};

function sqliteProblem(e: DriverError, file: string): StoreProblem | undefined {
  const code = codeOf(e);
  const where = typeof e.path === 'string' ? e.path : file;
  const denied = NO_PERMISSION[code] ?? (code.startsWith('SQLITE_READONLY') || code === 'SQLITE_PERM' ? 'read-only' : undefined);
  if (denied) {
    return { cause: `cannot write the SQLite database at ${where}: ${denied}`, remedy: 'Give this user write access there, or point DATA_DIR or DATABASE_URL at a writable place.' };
  }
  if (code.startsWith('SQLITE_CANTOPEN')) {
    return { cause: `cannot open the SQLite database ${file}`, remedy: 'Check that the path names a file (not a folder) in a directory this user can write, or fix DATABASE_URL.' };
  }
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    return { cause: `${file} is not a usable SQLite database (${messageOf(e)})`, remedy: 'Point DATABASE_URL at another file, or move this one away.' };
  }
  return undefined;
}

/** The cause and the remedy of a store's start-up failure, or undefined for an error it does not know. */
export function describeStoreError(err: unknown, databaseUrl: string): StoreProblem | undefined {
  const problemOf = databaseUrl.startsWith('sqlite:')
    ? (e: DriverError) => sqliteProblem(e, databaseUrl.slice('sqlite:'.length))
    : (e: DriverError) => postgresProblem(e, postgresTarget(databaseUrl));
  for (const e of causeChain(err)) {
    const problem = typeof e === 'object' ? problemOf(e as DriverError) : undefined;
    if (problem) return problem;
  }
  return undefined;
}

/** Which store a DATABASE_URL names, without credentials: `SQLite ./data/switchboard.db`, `PostgreSQL db:5432/chat`. */
export function describeStore(databaseUrl: string): string {
  if (databaseUrl.startsWith('sqlite:')) return `SQLite ${databaseUrl.slice('sqlite:'.length)}`;
  const t = postgresTarget(databaseUrl);
  return `PostgreSQL ${t.at}/${t.database}`;
}
