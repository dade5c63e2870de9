// The demo page: a small chat built on the SDK. Everything user-supplied is inserted as text, never HTML.
import { createClient, type ConnectionState, type Message, type PresenceEvent, type SwitchboardClient } from 'switchboard-client';
import { Banner } from './banner.js';
import { PendingSends } from './sends.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
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
const banner = new Banner(
  { root: $('banner'), text: $('banner-text'), countdown: $('countdown'), retryNow: $<HTMLButtonElement>('retry-now') },
  () => client?.reconnectNow(),
);
const sends = new PendingSends(
  $<HTMLOListElement>('outbox'),
  (channelId, content, clientMessageId) => client!.send(channelId, content, { clientMessageId }),
  (content) => {
    if (content !== undefined) input.value = content;
    input.focus();
  },
);

let client: SwitchboardClient | undefined;
let me = '';
let channel = '';
let unsubscribe: (() => void) | undefined;
let oldestSeq = 0;
let hasOlder = false;
let loadingOlder = false;
const typists = new Map<string, ReturnType<typeof setTimeout>>();

/** A development token whose user id is the name; a refusal carries the server's own message. */
async function fetchToken(userId: string): Promise<string> {
  const r = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId }),
  });
  if (!r.ok) {
    const body = (await r.json().catch(() => ({}))) as { error?: { message?: string } };
    throw new Error(`the server refused it (HTTP ${r.status}): ${body.error?.message ?? r.statusText}`);
  }
  return ((await r.json()) as { token: string }).token;
}

/**
 * Why `name` cannot be used, before asking the server; undefined when it may be. The server takes any
 * 1-128 characters of well-formed text as a user id (the field's maxlength keeps to 128, and typed text
 * is well-formed); `system` is its own, which tokens may not claim.
 */
function nameProblem(name: string): string | undefined {
  if (name === '') return 'enter a name (spaces alone do not count).';
  if (name === 'system') return '"system" is the server\'s own name: pick another.';
  return undefined;
}

function showState(s: Readonly<ConnectionState>): void {
  banner.show(s);
  sends.setConnected(s.status === 'connected');
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
  li.append(who, when);
  if (m.userId === me && sends.sentHere(m)) {
    li.dataset['state'] = 'sent';
    const state = document.createElement('span');
    state.className = 'state';
    state.textContent = '✓ sent';
    li.append(state);
  }
  li.append(text);
  return li;
}

function append(m: Message): void {
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  if (m.userId === me) sends.stored(m);
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

/**
 * Who is here: fetched on every (re-)join, then kept up to date from `user_joined`/`user_left`.
 * A server may answer presence from a cache up to PRESENCE_CACHE_MS old, so the events win: those
 * that arrive while a fetch is in flight are applied again on top of its answer.
 */
const present = new Set<string>();
let sinceFetch: PresenceEvent[] | undefined;

function renderPresence(): void {
  presenceList.replaceChildren(
    ...[...present].sort().map((userId) => {
      const li = document.createElement('li');
      li.textContent = userId === me ? `${userId} (you)` : userId;
      return li;
    }),
  );
}

function applyPresence(e: PresenceEvent): void {
  if (e.type === 'joined') present.add(e.userId);
  else present.delete(e.userId);
}

function onPresenceEvent(e: PresenceEvent): void {
  sinceFetch?.push(e);
  applyPresence(e);
  renderPresence();
}

async function refreshPresence(): Promise<void> {
  if (!client) return;
  const ch = channel;
  const events: PresenceEvent[] = [];
  sinceFetch = events;
  const users = await client.presence(ch).catch(() => undefined);
  if (sinceFetch === events) sinceFetch = undefined;
  if (!users || ch !== channel) return;
  present.clear();
  for (const u of users) present.add(u.userId);
  for (const e of events) applyPresence(e);
  renderPresence();
}

async function open(channelId: string): Promise<void> {
  if (!client || channelId === channel) return;
  unsubscribe?.();
  channel = channelId;
  channelList.querySelectorAll('button').forEach((b) => b.setAttribute('aria-current', String(b.dataset['channel'] === channelId)));
  channelTitle.textContent = `# ${channelId}`;
  list.replaceChildren();
  present.clear();
  presenceList.replaceChildren();
  sends.show(channelId);
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
      onPresence: onPresenceEvent,
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
  const problem = nameProblem(name);
  signinError.textContent = problem ? `Cannot sign in: ${problem}` : '';
  if (!problem) start(name).catch((err: Error) => (signinError.textContent = `Sign-in failed: ${err.message}`));
});

composer.addEventListener('submit', (e) => {
  e.preventDefault();
  const content = input.value;
  if (!client || !content.trim()) return;
  input.value = '';
  sendError.textContent = '';
  sends.add(channel, content);
});

input.addEventListener('input', () => {
  if (client && channel && input.value) client.typing(channel);
});

older.addEventListener('click', () => void loadOlder());
list.addEventListener('scroll', () => {
  if (list.scrollTop < 40) void loadOlder();
});
