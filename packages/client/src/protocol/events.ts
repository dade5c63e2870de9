import type { z } from 'zod';
import type { ErrorBody, ErrorCode } from './errors.js';
import type { Schemas } from './schemas.js';

/** A stored chat message as every client sees it. */
export interface Message {
  /** Unique across the cluster. */
  id: string;
  /** The channel's gapless sequence number: 1, 2, 3, … */
  seq: number;
  channelId: string;
  /** The sender's JWT `sub`, or the user an admin published as; `system` for server messages. */
  userId: string;
  content: string;
  /** ISO 8601, set by the server when the message was stored. */
  timestamp: string;
  clientMessageId: string;
}

export type AckOk<T extends object = object> = { ok: true } & T;
export type AckErr = { ok: false; error: ErrorBody };
export type AckResponse<T extends object = object> = AckOk<T> | AckErr;
export type Ack<T extends object = object> = (response: AckResponse<T>) => void;

// What a client sends: inferred from the schemas the server validates with, so the two cannot disagree.
/** A channel id, or `{channelId, sinceSeq}` to get the messages after `sinceSeq` in `missed`. */
export type JoinPayload = z.input<Schemas['joinChannel']>;
export type LeavePayload = z.input<Schemas['leaveChannel']>;
export type SendPayload = z.input<Schemas['sendMessage']>;
export type TypingPayload = z.input<Schemas['typing']>;
/** `beforeSeq` or `afterSeq` (not both); `limit` is clamped to MAX_PAGE. */
export type HistoryPayload = z.input<Schemas['history']>;
export type PresencePayload = z.input<Schemas['presence']>;

export interface JoinResult {
  channelId: string;
  lastSeq: number;
  /** With `sinceSeq`: the oldest (up to 200) messages after it, oldest first. */
  missed?: Message[];
  /** With `sinceSeq`: more messages follow `missed`; fetch them with `history`. */
  hasMore?: boolean;
}
export interface SendResult {
  message: Message;
  /** The same (channel, sender, clientMessageId) was stored before; this is the original. */
  duplicate?: boolean;
}
export interface TypingResult {
  /** Dropped: the user typed in this channel less than a second ago. */
  throttled?: boolean;
}
export interface HistoryResult {
  messages: Message[];
  hasMore: boolean;
}
export interface PresenceUser {
  userId: string;
  connections: number;
}
export interface PresenceResult {
  /** Sorted by userId; at most PRESENCE_MAX_USERS of them (the first by id) in a large channel. */
  users: PresenceUser[];
  /** With `truncated`: how many users the channel has in all. */
  total?: number;
  /** Present (true) when `users` is cut to the cap. */
  truncated?: true;
}

export interface ClientToServerEvents {
  join_channel: (payload: JoinPayload, ack?: Ack<JoinResult>) => void;
  leave_channel: (payload: LeavePayload, ack?: Ack<{ channelId: string }>) => void;
  send_message: (payload: SendPayload, ack?: Ack<SendResult>) => void;
  typing: (payload: TypingPayload, ack?: Ack<TypingResult>) => void;
  history: (payload: HistoryPayload, ack?: Ack<HistoryResult>) => void;
  presence: (payload: PresencePayload, ack?: Ack<PresenceResult>) => void;
}

export interface ChannelEvent {
  userId: string;
  channelId: string;
  /** ISO 8601 */
  timestamp: string;
}

export interface ServerToClientEvents {
  joined: (e: { channelId: string; lastSeq: number; instance: string }) => void;
  left: (e: { channelId: string }) => void;
  user_joined: (e: ChannelEvent) => void;
  user_left: (e: ChannelEvent) => void;
  new_message: (m: Message) => void;
  /**
   * Several `new_message`s in one frame, oldest first; sent instead of `new_message` only to clients
   * that asked for it with `auth.batch = true` at the handshake.
   */
  new_messages: (ms: Message[]) => void;
  user_typing: (e: { userId: string; channelId: string }) => void;
  error: (e: { code: ErrorCode; message: string; event: string; retryAfterMs?: number }) => void;
  server_shutdown: (e: { message: string; reconnectDelay: number }) => void;
  /**
   * The instance lost its link to the other instances for a while and may have missed broadcasts:
   * fetch `history` after the last `seq` you hold for each joined channel.
   */
  resync: (e: { reason: string }) => void;
}

/** Data the server keeps on each socket. */
export interface SocketData {
  userId: string;
  name: string | undefined;
  isAdmin: boolean;
  /** Private channels the token grants. */
  grants: ReadonlySet<string>;
  /** Token expiry, ms since the epoch. */
  expiresAt: number;
  /** When the token was issued (`iat`), ms since the epoch; a revocation wins over grants of older tokens. */
  issuedAt?: number | undefined;
  /** The client asked for `new_messages` frames. */
  batch: boolean;
}

export const EVENT_NAMES = [
  'join_channel',
  'leave_channel',
  'send_message',
  'typing',
  'history',
  'presence',
] as const satisfies readonly (keyof ClientToServerEvents)[];
export type ClientEventName = (typeof EVENT_NAMES)[number];

const CLIENT_EVENTS: ReadonlySet<unknown> = new Set(EVENT_NAMES);
/** Whether a name a client sent is one of the protocol's client-to-server events. */
export const isClientEvent = (name: unknown): name is ClientEventName => CLIENT_EVENTS.has(name);
