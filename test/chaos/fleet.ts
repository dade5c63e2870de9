import { createClient, isSwitchboardClientError, type SwitchboardClient } from 'switchboard-client';
import type { Message } from 'switchboard-client/protocol';
import { token } from '../helpers/tokens.js';

/** One chat user of the chaos run: an SDK client subscribed to every channel, sending steadily. */
export interface Member {
  id: string;
  client: SwitchboardClient;
  /** Connected through the client-side proxies (whose network a fault drops). */
  proxied: boolean;
  /** What the SDK delivered per channel, in delivery order. */
  views: Map<string, Message[]>;
  /** When each message id was first delivered to this member (ms since the epoch). */
  seenAt: Map<string, number>;
  sent: number;
  inflight: number;
  nextAt: number;
}

export interface Acked {
  member: string;
  content: string;
  message: Message;
  at: number;
}

export interface Fleet {
  members: Member[];
  acked: Acked[];
  /** Failed sends by the SDK's error code. */
  failures: Map<string, number>;
  /** Errors the SDK reported outside a promise (onError), by code or name. */
  sdkErrors: Map<string, number>;
  /** Sends not settled yet. */
  pending(): number;
  startSending(): void;
  /** Stops new sends and resolves once every send has settled. */
  stopSending(): Promise<void>;
  close(): void;
}

export interface FleetOptions {
  direct: number;
  proxied: number;
  channels: readonly string[];
  urls: string[];
  proxiedUrls: string[];
  /** Mean gap between two sends of one member, ms. */
  sendEveryMs: number;
  /** Most unacknowledged sends one member keeps open. */
  maxInflight: number;
}

const rotate = <T>(list: T[], by: number): T[] => list.map((_, i) => list[(i + by) % list.length]!);
const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

export function startFleet(o: FleetOptions): Fleet {
  const members: Member[] = [];
  const acked: Acked[] = [];
  const failures = new Map<string, number>();
  const sdkErrors = new Map<string, number>();
  const inflight = new Set<Promise<unknown>>();
  let sending = false;
  let ticker: NodeJS.Timeout | undefined;

  const total = o.direct + o.proxied;
  for (let i = 0; i < total; i++) {
    const proxied = i >= o.direct;
    const id = `u${i}`;
    const client = createClient({
      url: rotate(proxied ? o.proxiedUrls : o.urls, i),
      getToken: () => token(id),
      onError: (e) => bump(sdkErrors, isSwitchboardClientError(e) ? e.code : e.name),
    });
    const member: Member = { id, client, proxied, views: new Map(), seenAt: new Map(), sent: 0, inflight: 0, nextAt: Date.now() + Math.random() * o.sendEveryMs };
    for (const channelId of o.channels) {
      const view: Message[] = [];
      member.views.set(channelId, view);
      client.subscribe(
        channelId,
        {
          onMessage: (m) => {
            view.push(m);
            if (!member.seenAt.has(m.id)) member.seenAt.set(m.id, Date.now());
          },
          onError: (e) => bump(sdkErrors, `subscribe:${e.code}`),
        },
        { sinceSeq: 0 },
      );
    }
    members.push(member);
  }

  const sendOne = (m: Member) => {
    const channelId = o.channels[Math.floor(Math.random() * o.channels.length)]!;
    const content = `${m.id}#${++m.sent}`;
    m.inflight++;
    const p = m.client.send(channelId, content).then(
      (message) => {
        acked.push({ member: m.id, content, message, at: Date.now() });
      },
      (err: unknown) => bump(failures, isSwitchboardClientError(err) ? err.code : String((err as Error)?.name)),
    );
    inflight.add(p);
    void p.finally(() => {
      m.inflight--;
      inflight.delete(p);
    });
  };

  return {
    members,
    acked,
    failures,
    sdkErrors,
    pending: () => inflight.size,
    startSending() {
      sending = true;
      ticker = setInterval(() => {
        if (!sending) return;
        const now = Date.now();
        for (const m of members) {
          if (now < m.nextAt || m.inflight >= o.maxInflight) continue;
          m.nextAt = now + o.sendEveryMs * (0.5 + Math.random());
          sendOne(m);
        }
      }, 20);
    },
    async stopSending() {
      sending = false;
      clearInterval(ticker);
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
    close() {
      sending = false;
      clearInterval(ticker);
      for (const m of members) m.client.close();
    },
  };
}
