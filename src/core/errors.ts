import { ErrorCode, SwitchboardError } from 'switchboard-client/protocol';
import { StoreError } from '../ports/message-store.js';

/** The one answer for "no access", "not joined" and "no such channel": existence is never revealed. */
export const forbidden = (message = 'Access denied'): SwitchboardError => new SwitchboardError(ErrorCode.FORBIDDEN, message);

/** Maps a store failure to the client-facing error; nothing of the cause leaks. */
export function storeFailure(err: unknown): SwitchboardError {
  if (err instanceof SwitchboardError) return err;
  if (err instanceof StoreError) {
    if (err.kind === 'unavailable') return new SwitchboardError(ErrorCode.UNAVAILABLE, 'Storage is unavailable; nothing was stored. Retry shortly.', { cause: err });
    if (err.kind === 'not_found') return new SwitchboardError(ErrorCode.FORBIDDEN, forbidden().message, { cause: err });
  }
  return new SwitchboardError(ErrorCode.INTERNAL, 'Internal error', { cause: err });
}

/** Awaits a store call; a failure rejects with the client-facing error of `storeFailure`. */
export async function fromStore<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    throw storeFailure(err);
  }
}
