import type { Server, Socket } from 'socket.io';
import type { Ack, ClientEventName, ClientToServerEvents, ServerToClientEvents, SocketData } from 'switchboard-client/protocol';

// Server-to-server events are unused: cross-instance traffic is the adapter's own broadcasts.
export type IoServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
export type IoSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** The payload of a client event, as the event map declares it. */
export type EventPayload<E extends ClientEventName> = Parameters<ClientToServerEvents[E]>[0];
/** What a client event's successful ack carries besides `ok: true`. */
export type EventResult<E extends ClientEventName> = NonNullable<Parameters<ClientToServerEvents[E]>[1]> extends Ack<infer R> ? R : never;
/** A listener for a client event, typed by the event map. */
export type EventListener<E extends ClientEventName> = (...args: Parameters<ClientToServerEvents[E]>) => void;
/** The callback a client may pass as an event's last argument. */
export type AckFn = (response: unknown) => void;
