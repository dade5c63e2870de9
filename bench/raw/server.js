// The ceiling: one process, `ws` only, no Socket.IO, no Redis, no store. It speaks just enough of the
// Engine.IO v4 / Socket.IO v5 text framing for the bench's load generator (open, namespace connect with
// an HS256 JWT checked against a key imported once, join_channel, send_message with ack, ping) and
// broadcasts each message as one pre-encoded buffer written to every member.
import { createSecretKey } from 'node:crypto';
import { createServer } from 'node:http';
import { jwtVerify } from 'jose';
import { WebSocketServer } from 'ws';

const PORT = Number(process.env.PORT ?? 3000);
const HOST = process.env.HOST ?? '127.0.0.1';
const key = createSecretKey(Buffer.from(process.env.JWT_SECRET ?? '', 'utf8'));
const rooms = new Map();
let nextSid = 0;
let nextId = 0;

const server = createServer((_req, res) => {
  res.writeHead(404).end();
});
const wss = new WebSocketServer({ server, path: '/socket.io/', perMessageDeflate: false });

wss.on('connection', (ws) => {
  const sid = `r${++nextSid}`;
  let userId;
  const joined = new Set();
  ws.send(`0{"sid":"${sid}","upgrades":[],"pingInterval":10000,"pingTimeout":20000,"maxPayload":1000000}`);
  const ping = setInterval(() => ws.send('2'), 10_000);
  ws.on('message', async (data) => {
    const text = data.toString();
    if (text === '3') return;
    if (text.startsWith('40')) {
      try {
        const auth = JSON.parse(text.slice(2) || '{}');
        const { payload } = await jwtVerify(auth.token, key, { algorithms: ['HS256'] });
        userId = payload.sub;
        ws.send(`40{"sid":"${sid}"}`);
      } catch {
        ws.send('44{"message":"Invalid or expired token"}');
      }
      return;
    }
    if (!text.startsWith('42') || userId === undefined) return;
    const bracket = text.indexOf('[');
    const ackId = bracket > 2 ? text.slice(2, bracket) : '';
    const [event, arg] = JSON.parse(text.slice(bracket));
    if (event === 'join_channel') {
      const channelId = typeof arg === 'string' ? arg : arg.channelId;
      let room = rooms.get(channelId);
      if (!room) rooms.set(channelId, (room = new Set()));
      room.add(ws);
      joined.add(channelId);
      if (ackId) ws.send(`43${ackId}[{"ok":true,"channelId":${JSON.stringify(channelId)}}]`);
      ws.send(`42["joined",{"channelId":${JSON.stringify(channelId)}}]`);
    } else if (event === 'send_message') {
      const message = {
        id: String(++nextId),
        channelId: arg.channelId,
        userId,
        content: arg.content,
        timestamp: new Date().toISOString(),
        clientMessageId: arg.clientMessageId,
      };
      const frame = Buffer.from(`42["new_message",${JSON.stringify(message)}]`);
      for (const member of rooms.get(arg.channelId) ?? []) member.send(frame, { binary: false });
      if (ackId) ws.send(`43${ackId}[{"ok":true,"id":"${message.id}"}]`);
    }
  });
  ws.on('close', () => {
    clearInterval(ping);
    for (const c of joined) rooms.get(c)?.delete(ws);
  });
  ws.on('error', () => undefined);
});

server.listen(PORT, HOST, () => console.log(`raw ws listening on ${HOST}:${PORT}`));
const shutdown = () => {
  for (const ws of wss.clients) ws.terminate();
  server.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
