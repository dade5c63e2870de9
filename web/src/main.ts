// The demo page: a small chat built on the SDK. Everything user-supplied is inserted as text, never HTML.
import { createClient, type ConnectionState, type Message, type SwitchboardClient } from 'switchboard-client';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const banner = $<HTMLParagraphElement>('banner');
const signin = $<HTMLFormElement>('signin');
const signinError = $<HTMLParagraphElement>('signin-error');
const chat = $<HTMLDivElement>('chat');
const channelList = $<HTMLUListElement>('channels');
const channelTitle = $<HTMLHeadingElement>('channel-title');
const list = $<HTMLOListElement>('messages');
const older = $<HTMLButtonElement>('older');
const typingLine = $<HTMLParagraphElement>('typing');
const composer = $<HTMLFormElement>('composer');
const input = $<HTMLInputElement>('message');
const sendError = $<HTMLParagraphElement>('send-error');
const presenceList = $<HTMLUListElement>('presence');

let client: SwitchboardClient | undefined;
let me = '';
let channel = '';
let unsubscribe: (() => void) | undefined;
let oldestSeq = 0;
let hasOlder = false;
let loadingOlder = false;
const typists = new Map<string, ReturnType<typeof setTimeout>>();

async function fetchToken(userId: string): Promise<string> {
  const r = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId, name: userId }),
  });
  if (!r.ok) throw new Error(((await r.json().catch(() => ({}))) as { error?: { message?: string } }).error?.message ?? `HTTP ${r.status}`);
  return ((await r.json()) as { token: string }).token;
}

function showState(s: Readonly<ConnectionState>): void {
  banner.dataset['status'] = s.status;
  banner.dataset['instance'] = s.instance ?? '';
  banner.textContent =
    s.status === 'connected'
      ? `Connected${s.instance ? ` · instance ${s.instance}` : ''}`
      : s.status === 'connecting'
        ? 'Connecting…'
        : s.status === 'reconnecting'
          ? 'Connection lost · reconnecting…'
          : 'Offline';
}

function renderMessage(m: Message): HTMLLIElement {
  const li = document.createElement('li');
  li.dataset['seq'] = String(m.seq);
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = m.userId;
  const when = document.createElement('time');
  when.dateTime = m.timestamp;
  when.textContent = new Date(m.timestamp).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const text = document.createElement('p');
  text.textContent = m.content;
  li.append(who, when, text);
  return li;
}

function append(m: Message): void {
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(renderMessage(m));
  if (nearBottom || m.userId === me) list.scrollTop = list.scrollHeight;
  clearTyping(m.userId);
}

async function loadOlder(): Promise<void> {
  if (!client || !hasOlder || loadingOlder) return;
  loadingOlder = true;
  try {
    const page = await client.history({ channelId: channel, beforeSeq: oldestSeq, limit: 50 });
    const height = list.scrollHeight;
    list.setAttribute('aria-busy', 'true'); // older pages are not news: keep screen readers quiet
    list.prepend(...page.messages.map(renderMessage));
    list.scrollTop += list.scrollHeight - height; // keep what the reader was looking at in place
    list.removeAttribute('aria-busy');
    if (page.messages[0]) oldestSeq = page.messages[0].seq;
    hasOlder = page.hasMore;
    older.hidden = !hasOlder;
  } catch (err) {
    sendError.textContent = `Could not load older messages: ${(err as Error).message}`;
  } finally {
    loadingOlder = false;
  }
}

function showTyping(): void {
  const names = [...typists.keys()];
  typingLine.textContent = names.length === 0 ? '' : `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} typing…`;
}
function clearTyping(userId: string): void {
  clearTimeout(typists.get(userId));
  if (typists.delete(userId)) showTyping();
}

async function refreshPresence(): Promise<void> {
  if (!client) return;
  const ch = channel;
  const users = await client.presence(ch).catch(() => undefined);
  if (!users || ch !== channel) return;
  presenceList.replaceChildren(
    ...users.map((u) => {
      const li = document.createElement('li');
      li.textContent = u.userId === me ? `${u.userId} (you)` : u.userId;
      return li;
    }),
  );
}

async function open(channelId: string): Promise<void> {
  if (!client || channelId === channel) return;
  unsubscribe?.();
  channel = channelId;
  channelList.querySelectorAll('button').forEach((b) => b.setAttribute('aria-current', String(b.dataset['channel'] === channelId)));
  channelTitle.textContent = `# ${channelId}`;
  list.replaceChildren();
  presenceList.replaceChildren();
  for (const t of typists.values()) clearTimeout(t);
  typists.clear();
  showTyping();
  // The newest page first; the live stream then starts right after its last message: no gap, no repeat.
  const page = await client.history({ channelId, limit: 50 });
  if (channel !== channelId) return;
  list.setAttribute('aria-busy', 'true');
  list.append(...page.messages.map(renderMessage));
  list.scrollTop = list.scrollHeight;
  list.removeAttribute('aria-busy');
  oldestSeq = page.messages[0]?.seq ?? 0;
  hasOlder = page.hasMore;
  older.hidden = !hasOlder;
  unsubscribe = client.subscribe(
    channelId,
    {
      onMessage: append,
      onJoin: () => void refreshPresence(),
      onPresence: () => void refreshPresence(),
      onTyping: ({ userId }) => {
        clearTimeout(typists.get(userId));
        typists.set(
          userId,
          setTimeout(() => clearTyping(userId), 3000),
        );
        showTyping();
      },
      onError: (err) => (sendError.textContent = err.message),
    },
    { sinceSeq: page.messages.at(-1)?.seq ?? 0 },
  );
}

async function start(name: string): Promise<void> {
  let token = await fetchToken(name);
  me = name;
  client = createClient({
    url: location.origin,
    getToken: async ({ reason }) => (reason === 'expired' ? (token = await fetchToken(name)) : token),
  });
  client.onStateChange(showState);
  const r = await fetch('/api/channels', { headers: { authorization: `Bearer ${token}` } });
  const { channels } = (await r.json()) as { channels: { id: string; name: string }[] };
  channelList.replaceChildren(
    ...channels.map((c) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.dataset['channel'] = c.id;
      b.textContent = `# ${c.name}`;
      b.addEventListener('click', () => void open(c.id));
      li.append(b);
      return li;
    }),
  );
  signin.hidden = true;
  chat.hidden = false;
  const first = channels[0];
  if (first) await open(first.id);
  input.focus();
}

signin.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $<HTMLInputElement>('name').value.trim();
  signinError.textContent = '';
  start(name).catch((err: Error) => (signinError.textContent = `Sign-in failed: ${err.message}`));
});

composer.addEventListener('submit', (e) => {
  e.preventDefault();
  const content = input.value;
  if (!client || !content.trim()) return;
  input.value = '';
  sendError.textContent = '';
  client.send(channel, content).catch((err: Error & { code?: string }) => {
    sendError.textContent = `Not sent (${err.code ?? 'error'}): ${err.message}`;
    if (!input.value) input.value = content;
  });
});

input.addEventListener('input', () => {
  if (client && channel && input.value) client.typing(channel);
});

older.addEventListener('click', () => void loadOlder());
list.addEventListener('scroll', () => {
  if (list.scrollTop < 40) void loadOlder();
});
