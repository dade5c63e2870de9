/**
 * The one catalogue of error codes a client can receive, on an ack, an `error` event, a
 * `connect_error` or an HTTP error body. Codes are stable; messages are for humans and never carry
 * secrets, stack traces or SQL.
 */
export const ErrorCode = {
  /** No token, or a token that failed verification. Get a fresh token, then reconnect. */
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  /** No access, not joined, or unknown channel (existence is never revealed). Do not retry. */
  FORBIDDEN: 'FORBIDDEN',
  /** The payload does not match the event's schema. Do not retry unchanged. */
  INVALID_PAYLOAD: 'INVALID_PAYLOAD',
  /** A field is over its size limit. Do not retry unchanged. */
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  /** Over a limit; retry after `retryAfterMs`. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** A dependency (the store) is down; nothing was stored. Retry with the same clientMessageId. */
  UNAVAILABLE: 'UNAVAILABLE',
  /** An unexpected server error; it is logged with the request's context. Retrying is safe for sends. */
  INTERNAL: 'INTERNAL',
  /** REST only: no such route, or an admin named a channel that does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /** REST only: the channel id is taken. */
  CONFLICT: 'CONFLICT',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Whether the same request, made again later, can succeed: after `retryAfterMs` for RATE_LIMITED,
 * with backoff for the others. Every retry rule of the SDK is this table.
 */
const RETRYABLE: Readonly<Record<ErrorCode, boolean>> = {
  UNAUTHENTICATED: false,
  FORBIDDEN: false,
  INVALID_PAYLOAD: false,
  PAYLOAD_TOO_LARGE: false,
  RATE_LIMITED: true,
  UNAVAILABLE: true,
  INTERNAL: true,
  NOT_FOUND: false,
  CONFLICT: false,
};

/**
 * True for RATE_LIMITED (retry after `retryAfterMs`), UNAVAILABLE and INTERNAL (retry with backoff);
 * false for every other code, including codes this version does not know.
 */
export function isRetryable(code: string): boolean {
  return Object.hasOwn(RETRYABLE, code) && RETRYABLE[code as ErrorCode];
}

/** HTTP status used for each code by the REST API. */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = Object.freeze({
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  INVALID_PAYLOAD: 400,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500,
  NOT_FOUND: 404,
  CONFLICT: 409,
});

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  /** Present with RATE_LIMITED: when the request may be retried. */
  retryAfterMs?: number;
}

/** An error that is safe to show to the client as it is. */
export class SwitchboardError extends Error {
  readonly code: ErrorCode;
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { retryAfterMs?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SwitchboardError';
    this.code = code;
    this.retryAfterMs = options?.retryAfterMs;
  }

  toBody(): ErrorBody {
    return this.retryAfterMs === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, retryAfterMs: this.retryAfterMs };
  }
}

/** The messages of the two handshake refusals, exactly as the contract words them. */
export const AUTH_REQUIRED = 'Authentication required';
export const AUTH_INVALID = 'Invalid or expired token';
