/**
 * `switchboard-client`: the browser and Node SDK. See docs/sdk.md.
 *
 * @example
 * import { createClient } from 'switchboard-client';
 * const client = createClient({ url: 'https://chat.example.com', getToken: () => fetchToken() });
 * client.subscribe('general', { onMessage: (m) => render(m) });
 * await client.send('general', 'hello');
 */
export { createClient, type SwitchboardClient } from './client.js';
export type { ConnectionState, ConnectionStatus, DrainNotice } from './connection.js';
export { newId, type SendOptions } from './outbox.js';
export type { JoinInfo, PresenceEvent, SubscribeOptions, SubscriptionHandlers } from './subscriptions.js';
export { SwitchboardClientError, isSwitchboardClientError, type ClientErrorCode } from './errors.js';
export { DEFAULT_OPTIONS, backoff, type ClientOptions, type CreateClientOptions, type TokenContext } from './options.js';
export { ChannelStream } from './stream.js';
export type { ErrorCode } from './protocol/errors.js';
export type { HistoryPayload, HistoryResult, Message, PresenceUser } from './protocol/events.js';
