// The yardstick: the common Socket.IO + Redis chat recipe (../../../shared/REFERENCE-DESIGN.md) as its
// users write it. Deliberately plain: no acks, no validation, one synchronous INSERT per message.
// Written for this benchmark; not part of Switchboard.
//
// Deviation, stated in docs/performance.md: the recipe uses two `redis` (node-redis) clients; that
// package is not installed here, so the adapter gets two ioredis clients. The adapter code path
// (@socket.io/redis-adapter createAdapter, PUBLISH/SUBSCRIBE on one channel) is the same.
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { jwtVerify } from 'jose';
import Database from 'better-sqlite3';

const PORT = Number(process.env.PORT ?? 3000);
const HOST = process.env.HOST ?? '0.0.0.0';
const secret = process.env.JWT_SECRET;
const db = new Database(process.env.SQLITE_PATH ?? './reference.db');
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = 5000');
db.exec(`CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  channel_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  content TEXT NOT NULL,
  client_message_id TEXT,
  created_at TEXT NOT NULL
)`);
const insert = db.prepare('INSERT INTO messages (channel_id, user_id, content, client_message_id, created_at) VALUES (?, ?, ?, ?, ?)');

function saveMessage({ channelId, userId, content, clientMessageId }) {
  const timestamp = new Date().toISOString();
  const result = insert.run(channelId, userId, content, clientMessageId ?? null, timestamp);
  return { id: String(result.lastInsertRowid), channelId, userId, content, timestamp, clientMessageId };
}

async function checkChannelAccess(_userId, _channelId) {
  return true;
}

const httpServer = createServer();
const io = new Server(httpServer, {
  cors: { origin: process.env.ALLOWED_ORIGIN ?? 'http://localhost:3000', methods: ['GET', 'POST'], credentials: true },
  pingInterval: 10000,
  pingTimeout: 20000,
  transports: ['websocket', 'polling'],
});

const pubClient = new Redis(process.env.REDIS_URL ?? 'redis://localhost:6379');
const subClient = pubClient.duplicate();
io.adapter(createAdapter(pubClient, subClient));

io.use(async (socket, next) => {
  const token = socket.handshake.auth?.token || socket.handshake.headers.authorization?.split(' ')[1];
  if (!token) return next(new Error('Authentication required'));
  try {
    const { payload } = await jwtVerify(token, new TextEncoder().encode(secret));
    socket.data.userId = payload.sub;
    socket.data.user = payload;
    next();
  } catch {
    next(new Error('Invalid or expired token'));
  }
});

io.on('connection', (socket) => {
  const { userId } = socket.data;

  socket.on('join_channel', async (channelId) => {
    if (!(await checkChannelAccess(userId, channelId))) {
      socket.emit('error', { code: 'FORBIDDEN', message: 'Access denied' });
      return;
    }
    socket.join(`channel:${channelId}`);
    socket.to(`channel:${channelId}`).emit('user_joined', { userId, channelId, timestamp: new Date().toISOString() });
    socket.emit('joined', { channelId });
  });

  socket.on('send_message', async ({ channelId, content, clientMessageId }) => {
    const message = saveMessage({ channelId, userId, content, clientMessageId });
    io.to(`channel:${channelId}`).emit('new_message', message);
  });

  socket.on('typing', ({ channelId }) => {
    socket.to(`channel:${channelId}`).volatile.emit('user_typing', { userId, channelId });
  });

  socket.on('disconnect', (reason) => {
    if (process.env.LOG_LEVEL === 'debug') console.log(`disconnected ${userId} ${reason}`);
  });
});

httpServer.listen(PORT, HOST, () => console.log(`reference listening on ${HOST}:${PORT}`));

const shutdown = () => {
  io.close();
  pubClient.disconnect();
  subClient.disconnect();
  db.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
