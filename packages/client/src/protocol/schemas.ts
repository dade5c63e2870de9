import { z } from 'zod';

/** Limits every schema is built with; the server takes them from its config. */
export interface PayloadLimits {
  /** Characters (code points) of `content`. @default 4000 */
  maxMessageLength: number;
}

export const DEFAULT_LIMITS: PayloadLimits = Object.freeze({ maxMessageLength: 4000 });

export const CHANNEL_ID_PATTERN = /^[A-Za-z0-9_\-.:]{1,64}$/;

export const channelId = z
  .string()
  .regex(CHANNEL_ID_PATTERN, 'channel ids are 1-64 characters of A-Z a-z 0-9 _ - . :');

export const userId = z
  .string()
  .min(1)
  .max(128)
  .refine((s) => s.isWellFormed() && !s.includes('\u0000'), 'user ids are well-formed text without NUL');

export const clientMessageId = z
  .string()
  .min(1, 'clientMessageId must not be empty')
  .max(64, 'clientMessageId is at most 64 characters')
  .refine((s) => s.isWellFormed() && !s.includes('\u0000'), 'clientMessageId must be well-formed text');

export const seq = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** Counts code points, so an emoji is one character as users see it (mostly). */
export const charLength = (s: string): number => {
  if (s.length < 2) return s.length;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
};

/** Builds the payload schemas of the client-to-server events for the given limits. */
export function createSchemas(limits: PayloadLimits = DEFAULT_LIMITS) {
  // Content checks run cheapest first; the length rule raises PAYLOAD_TOO_LARGE (see isTooLarge below).
  const content = z
    .string()
    .min(1, 'content must not be empty')
    .refine((s) => s.length <= limits.maxMessageLength * 2 && charLength(s) <= limits.maxMessageLength, {
      message: `content is at most ${limits.maxMessageLength} characters`,
      params: { tooLarge: true },
      abort: true,
    })
    .refine((s) => !s.includes('\u0000'), 'content must not contain NUL characters')
    .refine((s) => s.isWellFormed(), 'content must be well-formed Unicode (no lone surrogates)')
    .refine((s) => s.trim().length > 0, 'content must not be blank');

  return {
    joinChannel: z.union([
      channelId,
      z.strictObject({ channelId, sinceSeq: seq.optional() }),
    ]),
    leaveChannel: z.union([channelId, z.strictObject({ channelId })]),
    sendMessage: z.strictObject({ channelId, content, clientMessageId }),
    typing: z.strictObject({ channelId }),
    history: z
      .strictObject({
        channelId,
        beforeSeq: seq.optional(),
        afterSeq: seq.optional(),
        limit: z.number().int().min(1).optional(),
      })
      .refine((p) => p.beforeSeq === undefined || p.afterSeq === undefined, 'give beforeSeq or afterSeq, not both'),
    presence: z.strictObject({ channelId }),
    /** REST: POST /api/channels */
    createChannel: z.strictObject({
      id: channelId,
      name: z.string().min(1).max(128).refine((s) => s.isWellFormed() && !s.includes('\u0000')).optional(),
      private: z.boolean().optional(),
    }),
    /** REST: POST /api/channels/:id/messages */
    publish: z.strictObject({ content, userId: userId.optional(), clientMessageId: clientMessageId.optional() }),
    /** REST: query of GET /api/channels/:id/messages (strings, as in a URL) */
    historyQuery: z.strictObject({
      afterSeq: z.coerce.number().pipe(seq).optional(),
      beforeSeq: z.coerce.number().pipe(seq).optional(),
      limit: z.coerce.number().int().min(1).optional(),
    }),
  };
}

export type Schemas = ReturnType<typeof createSchemas>;

/** True when a validation failure was only about size, which the contract reports as PAYLOAD_TOO_LARGE. */
export function isTooLarge(error: z.ZodError): boolean {
  return error.issues.length > 0 && error.issues.every((i) => i.code === 'custom' && i.params?.['tooLarge'] === true);
}

/** A short, safe description of what was wrong, for the error message. Never echoes the input. */
export function describeIssues(error: z.ZodError): string {
  const first = error.issues[0];
  if (!first) return 'invalid payload';
  const path = first.path.length > 0 ? `${first.path.join('.')}: ` : '';
  const text = first.code === 'invalid_union' ? 'expected a channel id or an object with channelId' : first.message;
  return `${path}${text}`.slice(0, 200);
}
