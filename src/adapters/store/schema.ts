/** Tables as Kysely sees them. Times are ms since the epoch; both dialects store them as BIGINT. */
export interface Database {
  channels: {
    id: string;
    name: string;
    is_private: number;
    last_seq: number | string | bigint;
    created_at: number | string | bigint;
  };
  channel_members: {
    channel_id: string;
    user_id: string;
    created_at: number | string | bigint;
  };
  /** The last revocation of each (channel, user): a token's `channels` grant issued before it yields. */
  channel_revocations: {
    channel_id: string;
    user_id: string;
    revoked_at: number | string | bigint;
  };
  messages: {
    id: string;
    channel_id: string;
    seq: number | string | bigint;
    user_id: string;
    content: string;
    client_message_id: string;
    created_at: number | string | bigint;
  };
}
