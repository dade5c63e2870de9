import type { z } from 'zod';
import { ErrorCode, SwitchboardError, type ErrorBody, describeIssues, isTooLarge } from 'switchboard-client/protocol';
import type { AckFn } from './types.js';

/** The acknowledgement callback of an event: its last argument, when that is a function. */
export const ackOf = (args: readonly unknown[]): AckFn | undefined => {
  const last = args.at(-1);
  return typeof last === 'function' ? (last as AckFn) : undefined;
};

/** The error a client is shown: a SwitchboardError as it is, anything else as INTERNAL with no detail. */
export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof SwitchboardError) return err.toBody();
  return { code: ErrorCode.INTERNAL, message: 'Internal error' };
}

/** A payload that failed its schema: PAYLOAD_TOO_LARGE when only sizes were wrong, else INVALID_PAYLOAD. */
export function invalidPayload(error: z.ZodError): SwitchboardError {
  return new SwitchboardError(isTooLarge(error) ? ErrorCode.PAYLOAD_TOO_LARGE : ErrorCode.INVALID_PAYLOAD, describeIssues(error));
}
