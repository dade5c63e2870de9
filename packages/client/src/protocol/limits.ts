// Paging limits of the protocol, apart from the schemas so the SDK can use them without zod.

/** Largest page `history` returns; larger limits are clamped to it. */
export const MAX_PAGE = 200;
/** Page size when `limit` is omitted. */
export const DEFAULT_PAGE = 50;
/** Most messages a `join_channel` with `sinceSeq` returns in `missed`. */
export const MAX_MISSED = 200;
