import type { SwitchboardClientError } from './errors.js';
import { backoff, type ClientOptions } from './options.js';

/**
 * How long to wait before trying again, once `isRetryable` allowed it or the answer was lost
 * (`error` undefined): RATE_LIMITED waits its `retryAfterMs` plus up to 100 ms (so rate-limited
 * clients do not all return at once), everything else `backoff(failures)`.
 *
 * @param failures failed attempts of this operation before this one
 */
export function retryDelay(
  error: SwitchboardClientError | undefined,
  failures: number,
  o: Pick<ClientOptions, 'reconnectionDelay' | 'reconnectionDelayMax' | 'randomizationFactor'>,
): number {
  if (error?.code === 'RATE_LIMITED' && error.retryAfterMs !== undefined) return error.retryAfterMs + Math.random() * 100;
  return backoff(failures, o);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
