import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { LogFormat } from './config.js';

export interface LoggerOptions {
  level: string;
  instanceId: string;
  /** `auto`: `pretty` when stdout is a terminal and not in production, else `json`. @default 'json' */
  format?: LogFormat;
  /** Production mode (NODE_ENV=production), which `auto` keeps on JSON. @default false */
  production?: boolean;
}

/**
 * Keys pretty lines leave out: the instance id (the same on every line of a terminal), the component
 * and the error (both put into the message), and `startup` (the banner's message says it all).
 */
const PRETTY_IGNORE = 'pid,hostname,instanceId,component,err,startup';

/** `auto` resolved against the stream it writes to. */
function resolveLogFormat(format: LogFormat, production: boolean, isTTY: boolean): 'json' | 'pretty' {
  if (format !== 'auto') return format;
  return isTTY && !production ? 'pretty' : 'json';
}

interface LoggedError {
  message?: unknown;
  stack?: unknown;
}

/** A pretty line's message: `(component) msg: error message`, then the stack when `withStack`. */
function prettyMessage(log: Record<string, unknown>, messageKey: string, withStack: boolean): string {
  const component = typeof log['component'] === 'string' ? `(${log['component']}) ` : '';
  const msg = String(log[messageKey] ?? '');
  const err = log['err'] as LoggedError | string | undefined;
  if (err === undefined) return `${component}${msg}`;
  const reason = typeof err === 'object' ? String(err.message) : String(err);
  const line = `${component}${msg}${reason === msg ? '' : `: ${reason}`}`;
  const stack = typeof err === 'object' && typeof err.stack === 'string' ? err.stack : undefined;
  return withStack && stack ? `${line}\n${stack.replace(/^/gm, '    ')}` : line;
}

/** One line per event on stdout, coloured only when stdout is a terminal; stacks at debug and below. */
function prettyStream(level: string): DestinationStream {
  const withStack = pino.levels.values[level]! <= pino.levels.values['debug']!;
  return pretty({
    destination: 1,
    // Synchronous, so the last lines before process.exit() are written.
    sync: true,
    colorize: Boolean(process.stdout.isTTY),
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: PRETTY_IGNORE,
    messageFormat: (log, messageKey) => prettyMessage(log, messageKey, withStack),
  });
}

/**
 * The root logger on stdout: JSON lines with the instance id on each, or pretty lines for a person at
 * a terminal (see LoggerOptions.format). Components take children (`logger.child({ component })`).
 */
export function createLogger(options: LoggerOptions): Logger {
  const format = resolveLogFormat(options.format ?? 'json', options.production ?? false, Boolean(process.stdout.isTTY));
  const settings = {
    level: options.level,
    base: { instanceId: options.instanceId },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization'], censor: '[redacted]' },
  };
  return format === 'pretty' ? pino(settings, prettyStream(options.level)) : pino(settings);
}

export type { Logger };
