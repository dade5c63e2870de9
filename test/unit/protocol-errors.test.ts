import { describe, expect, it } from 'vitest';
import { ErrorCode, isRetryable } from 'switchboard-client/protocol';

describe('the error catalogue', () => {
  it('calls exactly RATE_LIMITED, UNAVAILABLE and INTERNAL retryable', () => {
    const retryable = Object.values(ErrorCode).filter((code) => isRetryable(code));
    expect(retryable.sort()).toEqual(['INTERNAL', 'RATE_LIMITED', 'UNAVAILABLE']);
  });

  it('calls codes it does not know not retryable, object member names included', () => {
    for (const code of ['TIMEOUT', 'CLOSED', 'OFFLINE', 'rate_limited', '', 'constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      expect(isRetryable(code), code).toBe(false);
    }
  });
});
