// The SDK's socket, typed by the protocol's event maps, and its one way of emitting with an acknowledgement.
import type { Socket } from 'socket.io-client';
import type { AckResponse, ClientToServerEvents, ServerToClientEvents } from './protocol/events.js';
import { SwitchboardClientError } from './errors.js';

/** The client-to-server events as the SDK emits them: always with an acknowledgement. */
type Emitted = {
  [E in keyof ClientToServerEvents]: ClientToServerEvents[E] extends (payload: infer P, ack?: infer A) => void
    ? (payload: P, ack: NonNullable<A>) => void
    : never;
};
export type IoSocket = Socket<ServerToClientEvents, Emitted>;
/** A socket whose acknowledgements also receive a timeout error first (`socket.timeout(ms)`). */
export type TimedSocket = ReturnType<IoSocket['timeout']>;

/** Emits one event on `timed`, passing `done` as its acknowledgement. */
export type AckEmit<T extends object> = (timed: TimedSocket, done: (err: Error | null, response: AckResponse<T> | undefined) => void) => void;

export type AckOutcome<T> =
  | { ok: true; value: T }
  | { ok: false; error: SwitchboardClientError }
  | { ok: false; error?: undefined; lost: 'timeout' | 'disconnected' };

/**
 * Emits one event with an acknowledgement and waits at most `timeoutMs` for it; never rejects. An
 * answer is `ok` or a typed error; no answer is `lost`: `disconnected` when the socket closed (the
 * next connection retries), else `timeout`. `emit` names the event, so the event map types it:
 * `ack<JoinResult>(socket, ms, (s, done) => s.emit('join_channel', payload, done))`.
 */
export function ack<T extends object>(socket: IoSocket, timeoutMs: number, emit: AckEmit<T>): Promise<AckOutcome<T>> {
  return new Promise((resolve) => {
    emit(socket.timeout(Math.max(1, timeoutMs)), (err, response) => {
      if (err) resolve({ ok: false, lost: socket.connected ? 'timeout' : 'disconnected' });
      else if (response?.ok === true) resolve({ ok: true, value: response });
      else resolve({ ok: false, error: SwitchboardClientError.fromBody(response?.error) });
    });
  });
}

export type Timer = ReturnType<typeof setTimeout>;
