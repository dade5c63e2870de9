import { pino, type Logger } from 'pino';

/** The root logger: JSON lines on stdout with the instance id on each line. Components take children. */
export function createLogger(options: { level: string; instanceId: string }): Logger {
  return pino({
    level: options.level,
    base: { instanceId: options.instanceId },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization'], censor: '[redacted]' },
  });
}

export type { Logger };
