import type { ErrorBody, ErrorCode } from './protocol/errors.js';

/**
 * The server's error codes, plus three of the client's own:
 * - `TIMEOUT`: no outcome within `sendTimeout` / `requestTimeout`. A timed-out send may still have
 *   been stored; it then arrives in the channel's subscription like any other message.
 * - `CLOSED`: `close()` was called before the operation finished.
 * - `OFFLINE`: `reconnectionAttempts` ran out; the client stopped trying.
 */
export type ClientErrorCode = ErrorCode | 'TIMEOUT' | 'CLOSED' | 'OFFLINE';

/** Every promise of the SDK rejects with this (never with a bare Error). */
export class SwitchboardClientError extends Error {
  readonly code: ClientErrorCode;
  /** With `RATE_LIMITED`: how long the server asked the client to wait. */
  readonly retryAfterMs: number | undefined;

  constructor(code: ClientErrorCode, message: string, options?: { retryAfterMs?: number | undefined; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SwitchboardClientError';
    this.code = code;
    this.retryAfterMs = options?.retryAfterMs;
  }

  static fromBody(body: ErrorBody | undefined): SwitchboardClientError {
    if (!body || typeof body.code !== 'string') return new SwitchboardClientError('INTERNAL', 'Malformed answer from the server');
    return new SwitchboardClientError(body.code, String(body.message ?? body.code), { retryAfterMs: body.retryAfterMs });
  }
}

/** The rejection of everything still pending, or started, after `close()`. */
export const closedError = (): SwitchboardClientError => new SwitchboardClientError('CLOSED', 'The client was closed');

export const isSwitchboardClientError = (err: unknown): err is SwitchboardClientError => err instanceof SwitchboardClientError;

/** Runs an application callback; what it throws goes to `onError` instead of into the SDK. */
export function callSafely(onError: (error: Error) => void, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    onError(err instanceof Error ? err : new Error(String(err)));
  }
}
