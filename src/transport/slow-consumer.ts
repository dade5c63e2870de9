import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { IoSocket } from './types.js';

export interface OutgoingCap {
  /** Bytes queued for one connection: Engine.IO's write buffer plus what the WebSocket has not yet handed to the kernel. */
  maxBytes: number;
  /** Packets waiting in Engine.IO's write buffer. */
  maxPackets: number;
}

interface EnginePacket {
  data?: unknown;
}

/** The slice of Engine.IO's socket this guard reads (its write buffer is not in the public types). */
interface EngineConn {
  writeBuffer: unknown[];
  transport: { name: string; socket?: { bufferedAmount?: number; terminate?: () => void } };
  on(event: 'packetCreate', l: (packet: EnginePacket) => void): unknown;
  on(event: 'flush', l: () => void): unknown;
  /** With `discard`, closes at once and drops the write buffer instead of waiting until it is sent. */
  close(discard: boolean): void;
}

const sizeOf = (data: unknown): number => {
  if (typeof data === 'string') return data.length;
  if (data && typeof (data as ArrayBufferView).byteLength === 'number') return (data as ArrayBufferView).byteLength;
  return 0;
};

/**
 * Caps what a connection may have queued towards its client. A client that stops reading (a stalled
 * network, a suspended tab, a hostile peer) would otherwise make the server buffer every message of
 * its channels without bound. Over either cap the connection is dropped at once and its unsent data
 * discarded (a long-polling client's next poll finds the session gone, not a burst of stale
 * frames), counted in `switchboard_slow_consumer_disconnects_total` and logged; the client
 * reconnects and catches up from the store with `sinceSeq`.
 */
export function capOutgoing(socket: IoSocket, cap: OutgoingCap, deps: { metrics: Pick<Metrics, 'slowConsumerDisconnects'>; logger: Logger }): void {
  const conn = socket.conn as unknown as EngineConn;
  // Bytes pushed into the write buffer since it was last handed to the transport.
  let queued = 0;
  let dropped = false;
  conn.on('flush', () => {
    queued = 0;
  });
  conn.on('packetCreate', (packet) => {
    if (dropped) return;
    queued += sizeOf(packet.data);
    const ws = conn.transport.name === 'websocket' ? conn.transport.socket : undefined;
    const bytes = queued + (ws?.bufferedAmount ?? 0);
    const packets = conn.writeBuffer.length + 1;
    if (bytes <= cap.maxBytes && packets <= cap.maxPackets) return;
    dropped = true;
    deps.metrics.slowConsumerDisconnects.inc();
    deps.logger.warn(
      { socketId: socket.id, userId: socket.data.userId, transport: conn.transport.name, queuedBytes: bytes, queuedPackets: packets, ...cap },
      'disconnecting a slow consumer: its outgoing buffer is over the cap',
    );
    // Leave every room now (no further packet is queued for it), after this packet has been pushed.
    queueMicrotask(() => {
      socket.disconnect(true);
      // Socket.IO's close waits until Engine.IO's buffer has been sent; drop it instead.
      conn.close(true);
      // The WebSocket's close handshake would wait for the client to read; drop the TCP connection instead.
      ws?.terminate?.();
    });
  });
}
