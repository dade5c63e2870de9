// A terminal chat client: node examples/chat.mjs <token> [channel]
// Lines you type are sent; messages of the channel are printed as they arrive.
// The server is http://127.0.0.1:3000 unless SWITCHBOARD_URL says otherwise (another port, a balancer).
import { createInterface } from 'node:readline';
import { io } from 'socket.io-client';

const [token, channelId = 'general'] = process.argv.slice(2);
if (!token) {
  console.error('usage: [SWITCHBOARD_URL=http://host:port] node examples/chat.mjs <token> [channel]   (get a token: npx switchboard token alice)');
  process.exit(2);
}
const url = process.env.SWITCHBOARD_URL ?? 'http://127.0.0.1:3000';
const socket = io(url, { auth: { token } });
console.log(`connecting to ${url}${process.env.SWITCHBOARD_URL ? '' : ' (set SWITCHBOARD_URL for another address)'}`);

socket.on('connect_error', (err) => {
  // A refused TCP connection surfaces as "xhr poll error" / "websocket error": say what to check.
  const unreachable = /poll error|websocket error|timeout/i.test(err.message);
  console.error(unreachable ? `cannot reach ${url}: is the server running there? Set SWITCHBOARD_URL to its address.` : `cannot connect: ${err.message}`);
});
socket.on('new_message', (m) => console.log(`[${m.seq}] ${m.userId}: ${m.content}`));
socket.on('user_joined', (e) => console.log(`* ${e.userId} joined`));
socket.on('error', (e) => console.error(`! ${e.code}: ${e.message}`));
socket.on('connect', async () => {
  const joined = await socket.emitWithAck('join_channel', channelId);
  if (!joined.ok) return console.error(`cannot join ${channelId}: ${joined.error.message}`);
  console.log(`joined #${channelId} (${joined.lastSeq} messages so far); type and press Enter`);
});

let n = 0;
createInterface({ input: process.stdin })
  .on('line', async (content) => {
    if (!content.trim()) return;
    const clientMessageId = `${process.pid}-${++n}`;
    const ack = await socket.emitWithAck('send_message', { channelId, content, clientMessageId });
    if (!ack.ok) console.error(`! ${ack.error.code}: ${ack.error.message}`);
  })
  .on('close', () => socket.close());
