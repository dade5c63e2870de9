import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from 'switchboard-client/protocol';

export type TestSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

const open = new Set<TestSocket>();

/** Connects and resolves once connected; rejects with the connect_error. Closed by closeAllClients(). */
export function connect(url: string, token: string | undefined, opts: Partial<ManagerOptions & SocketOptions> = {}): Promise<TestSocket> {
  const socket: TestSocket = io(url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    ...(token !== undefined ? { auth: { token } } : {}),
    ...opts,
  });
  open.add(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => {
      socket.close();
      open.delete(socket);
      reject(err);
    });
  });
}

export function closeAllClients(): void {
  for (const s of open) s.close();
  open.clear();
}

/** Collects every event of one name a socket receives. */
export function collect<E extends keyof ServerToClientEvents>(socket: TestSocket, event: E): Parameters<ServerToClientEvents[E]>[0][] {
  const out: Parameters<ServerToClientEvents[E]>[0][] = [];
  (socket as unknown as { on(e: string, l: (x: unknown) => void): void }).on(event, (x) => out.push(x as never));
  return out;
}

/** Resolves with the next event of that name (or rejects after timeoutMs). */
export function next<E extends keyof ServerToClientEvents>(socket: TestSocket, event: E, timeoutMs = 5000): Promise<Parameters<ServerToClientEvents[E]>[0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    (socket as unknown as { once(e: string, l: (x: unknown) => void): void }).once(event, (x) => {
      clearTimeout(timer);
      resolve(x as never);
    });
  });
}

/** Emits with an ack and a timeout; resolves with the ack body. */
export function call(socket: TestSocket, event: string, ...args: unknown[]): Promise<any> {
  return (socket.timeout(5000) as unknown as { emitWithAck(e: string, ...a: unknown[]): Promise<unknown> }).emitWithAck(event, ...args);
}
