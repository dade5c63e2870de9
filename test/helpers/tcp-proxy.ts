import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP forwarder in front of a real service (PostgreSQL, Redis, an instance), so a test can take the
 * service away from one side and give it back, or slow it down. A fixture that cuts links, not a
 * stand-in: every byte goes to the real server.
 */
export interface TcpProxy {
  readonly port: number;
  readonly isCut: boolean;
  /** Destroys every open connection and refuses new ones (ECONNREFUSED) until restore(). */
  cut(): Promise<void>;
  /** Accepts and forwards again, on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export interface TcpProxyOptions {
  /** Delay every chunk coming back from the service by this much, to widen race windows. @default 0 */
  delayMs?: number;
}

export async function startTcpProxy(targetHost: string, targetPort: number, options: TcpProxyOptions = {}): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const delay = options.delayMs ?? 0;
  let server: Server | undefined;
  let port = 0;
  let cut = false;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        if (cut) return void client.destroy();
        const upstream = createConnection({ host: targetHost, port: targetPort });
        sockets.add(client);
        sockets.add(upstream);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on('error', drop).on('close', drop);
        upstream.on('error', drop).on('close', drop);
        client.setNoDelay(true);
        upstream.setNoDelay(true);
        client.pipe(upstream);
        if (delay === 0) upstream.pipe(client);
        else upstream.on('data', (chunk: Buffer) => void setTimeout(() => client.writable && client.write(chunk), delay));
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        s.off('error', reject);
        s.on('error', () => undefined);
        port = (s.address() as { port: number }).port;
        server = s;
        resolve();
      });
    });

  const stopListening = async () => {
    const s = server;
    server = undefined;
    for (const sock of sockets) sock.destroy();
    sockets.clear();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  };

  await listen();
  return {
    get port() {
      return port;
    },
    get isCut() {
      return cut;
    },
    async cut() {
      cut = true;
      await stopListening();
    },
    async restore() {
      if (!cut) return;
      cut = false;
      // The port was ours a moment ago; retry briefly in case the OS still holds it.
      for (let i = 0; ; i++) {
        try {
          await listen();
          return;
        } catch (err) {
          if (i >= 50) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    async close() {
      cut = true;
      await stopListening();
    },
  };
}
