/**
 * A store process for the tests of several processes on one SQLite file, driven by lines on stdin:
 * - `open <file> <channel>`: opens the file and starts as an instance does (migrate, then the
 *   channel as a default public channel); answers `opened`.
 * - `append <channel> <userId> <batches> <size>`: appends the batches one after another, each
 *   `size` messages of its own plus one that every writer sends alike (a retry); answers one JSON
 *   line per batch, then `appended`.
 * It exits when stdin ends; a failure exits it with the error on stderr.
 */
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { openSqliteStore } from '../../src/adapters/store/sqlite.js';
import type { MessageDraft, MessageStore } from '../../src/ports/message-store.js';

let store: MessageStore | undefined;
const say = (line: string) => process.stdout.write(`${line}\n`);

async function open(file: string, channelId: string) {
  await store?.close();
  store = openSqliteStore(file, pino({ level: 'silent' }));
  await store.migrate();
  await store.ensurePublicChannels([channelId]);
  say('opened');
}

async function append(channelId: string, userId: string, batches: number, size: number) {
  for (let b = 0; b < batches; b++) {
    const own = Array.from({ length: size }, (_, i): MessageDraft => ({ channelId, userId, content: `${userId} ${b}.${i}`, clientMessageId: `${b}.${i}` }));
    const retry: MessageDraft = { channelId, userId: 'retrier', content: `retry ${b}`, clientMessageId: `retry-${b}` };
    const results = await store!.append([...own, retry]);
    say(JSON.stringify(results.map((r) => ({ seq: r.message.seq, id: r.message.id, duplicate: r.duplicate }))));
  }
  say('appended');
}

for await (const line of createInterface({ input: process.stdin })) {
  const [command, ...args] = line.split(' ');
  if (command === 'open') await open(args[0]!, args[1]!);
  else if (command === 'append') await append(args[0]!, args[1]!, Number(args[2]), Number(args[3]));
  else throw new Error(`unknown command: ${line}`);
}
await store?.close();
