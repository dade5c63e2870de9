// The page's own messages until the server has stored them: pending (waiting in the SDK's outbox,
// for the connection or for an acknowledgement) or failed, with "Retry" when trying again can help.
// Each message keeps one clientMessageId through every retry, so it is stored once however often it is tried.
import { newId, type Message, type SwitchboardClientError } from 'switchboard-client';
import { isRetryable } from 'switchboard-client/protocol';

export type SendFn = (channelId: string, content: string, clientMessageId: string) => Promise<Message>;

interface Entry {
  channelId: string;
  content: string;
  clientMessageId: string;
  state: 'pending' | 'failed';
  error: SwitchboardClientError | undefined;
}

/** Whether sending the same message again can succeed: no answer in time, or an error the catalogue calls retryable. */
const worthRetrying = (error: SwitchboardClientError) => error.code === 'TIMEOUT' || isRetryable(error.code);

export class PendingSends {
  private readonly entries = new Map<string, Entry>();
  /** Every clientMessageId sent from this page, to mark those messages "sent" once stored. */
  private readonly mine = new Set<string>();
  private channelId = '';
  private connected = false;

  constructor(
    private readonly list: HTMLOListElement,
    private readonly send: SendFn,
    /** Back to the composer, with a failed message's text to edit when given. */
    private readonly compose: (content?: string) => void,
  ) {}

  /** Sends `content` to `channelId`; it is listed here until it is stored or given up. */
  add(channelId: string, content: string): void {
    const e: Entry = { channelId, content, clientMessageId: newId(), state: 'pending', error: undefined };
    this.entries.set(e.clientMessageId, e);
    this.mine.add(e.clientMessageId);
    this.attempt(e);
  }

  /** Whether `m` was sent from this page. */
  sentHere(m: Message): boolean {
    return this.mine.has(m.clientMessageId);
  }

  /** A stored message reached the channel: if it was one of ours it leaves the list. */
  stored(m: Message): void {
    const e = this.entries.get(m.clientMessageId);
    if (e?.channelId === m.channelId && this.entries.delete(m.clientMessageId)) this.render();
  }

  /** Lists the entries of `channelId` only. */
  show(channelId: string): void {
    this.channelId = channelId;
    this.render();
  }

  /** Pending entries say whether they are waiting for the connection. */
  setConnected(connected: boolean): void {
    if (connected === this.connected) return;
    this.connected = connected;
    this.render();
  }

  private attempt(e: Entry): void {
    e.state = 'pending';
    e.error = undefined;
    this.render();
    this.send(e.channelId, e.content, e.clientMessageId).then(
      (m) => this.stored(m),
      (error: SwitchboardClientError) => {
        if (this.entries.get(e.clientMessageId) !== e) return;
        e.state = 'failed';
        e.error = error;
        this.render();
      },
    );
  }

  private render(): void {
    const shown = [...this.entries.values()].filter((e) => e.channelId === this.channelId);
    this.list.replaceChildren(...shown.map((e) => this.renderEntry(e)));
    this.list.lastElementChild?.scrollIntoView({ block: 'nearest' });
  }

  private renderEntry(e: Entry): HTMLLIElement {
    const li = document.createElement('li');
    li.dataset['state'] = e.state;
    li.dataset['clientId'] = e.clientMessageId;
    const state = document.createElement('span');
    state.className = 'state';
    const text = document.createElement('p');
    text.textContent = e.content;
    li.append(state, text);
    if (e.state === 'pending') {
      state.textContent = this.connected ? 'Sending…' : 'Waiting for the connection…';
      return li;
    }
    state.textContent = e.error?.code === 'TIMEOUT' ? 'Not sent: no answer in time.' : `Not sent: ${e.error?.message ?? 'unknown error'}`;
    const actions = document.createElement('div');
    actions.className = 'actions';
    if (e.error && worthRetrying(e.error)) {
      actions.append(
        button('Retry', () => {
          this.attempt(e);
          this.compose();
        }),
      );
    }
    actions.append(
      button('Edit', () => {
        this.entries.delete(e.clientMessageId);
        this.render();
        this.compose(e.content);
      }),
    );
    li.append(actions);
    return li;
  }
}

function button(label: string, onClick: () => void): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.addEventListener('click', onClick);
  return b;
}
