import { describe, expect, it } from 'vitest';
import { CHANNEL_ID_PATTERN, charLength, createSchemas, describeIssues, isTooLarge } from 'switchboard-client/protocol';

const schemas = createSchemas();
const send = (over: Record<string, unknown>) => schemas.sendMessage.safeParse({ channelId: 'general', content: 'hi', clientMessageId: 'c1', ...over });
/** invalid, too-large or ok, as the gateway would classify the result. */
const verdict = (r: ReturnType<typeof send>) => (r.success ? 'ok' : isTooLarge(r.error) ? 'too_large' : 'invalid');

describe('channel ids', () => {
  it('1-64 characters of A-Z a-z 0-9 _ - . :', () => {
    for (const ok of ['a', 'general', 'A-z_0.9:x', 'ops:alerts', 'x'.repeat(64), '__proto__', 'constructor', 'toString', '...', '-']) {
      expect(CHANNEL_ID_PATTERN.test(ok)).toBe(true);
      expect(schemas.joinChannel.safeParse(ok).success).toBe(true);
    }
    for (const bad of ['', 'x'.repeat(65), 'has space', 'a/b', 'naïve', 'a\u0000', 'tab\t', 'new\nline', 'a#b', '😀', 'general\n']) {
      expect(CHANNEL_ID_PATTERN.test(bad)).toBe(false);
      expect(schemas.joinChannel.safeParse(bad).success).toBe(false);
    }
  });

  it('join and leave take a string or an object; join may carry sinceSeq', () => {
    expect(schemas.joinChannel.parse('general')).toBe('general');
    expect(schemas.joinChannel.parse({ channelId: 'general', sinceSeq: 0 })).toEqual({ channelId: 'general', sinceSeq: 0 });
    expect(schemas.leaveChannel.parse({ channelId: 'general' })).toEqual({ channelId: 'general' });
    for (const bad of [{ channelId: 'general', sinceSeq: -1 }, { channelId: 'general', sinceSeq: 0.5 }, { channelId: 'general', sinceSeq: 2 ** 53 }, { channelId: 'general', x: 1 }, null, 1, ['general']]) {
      expect(schemas.joinChannel.safeParse(bad).success).toBe(false);
    }
  });

  it('own __proto__ keys (as JSON.parse makes them) are extra keys, not a prototype', () => {
    const payload = JSON.parse('{"channelId":"general","__proto__":{"sinceSeq":1}}');
    expect(schemas.joinChannel.safeParse(payload).success).toBe(false);
    expect(schemas.presence.safeParse(JSON.parse('{"channelId":"general","__proto__":null}')).success).toBe(false);
    expect(send(JSON.parse('{"__proto__":{"admin":true}}')).success).toBe(false);
    expect(schemas.typing.safeParse({ channelId: 'general', constructor: 'x' }).success).toBe(false);
  });
});

describe('send_message content', () => {
  it('up to MAX_MESSAGE_LENGTH characters, counted as code points', () => {
    expect(verdict(send({ content: 'x'.repeat(4000) }))).toBe('ok');
    expect(verdict(send({ content: '😀'.repeat(4000) }))).toBe('ok');
    expect(verdict(send({ content: 'x'.repeat(4001) }))).toBe('too_large');
    expect(verdict(send({ content: '😀'.repeat(4001) }))).toBe('too_large');
    expect(verdict(send({ content: 'x'.repeat(1_000_000) }))).toBe('too_large');
  });

  it('follows the configured limit', () => {
    const small = createSchemas({ maxMessageLength: 5 });
    expect(small.sendMessage.safeParse({ channelId: 'g', content: '12345', clientMessageId: 'c' }).success).toBe(true);
    const r = small.sendMessage.safeParse({ channelId: 'g', content: '123456', clientMessageId: 'c' });
    expect(r.success).toBe(false);
    expect(isTooLarge(r.error!)).toBe(true);
  });

  it('empty, blank, NUL and lone surrogates are invalid (not too large)', () => {
    for (const content of ['', ' ', '\n\t', 'a\u0000b', '\ud800', 'x\udc00y', 'end\ud83d']) {
      expect(verdict(send({ content }))).toBe('invalid');
    }
    expect(verdict(send({ content: 'paired 😀 is fine' }))).toBe('ok');
  });

  it('an over-long content with another error is INVALID_PAYLOAD, not PAYLOAD_TOO_LARGE', () => {
    expect(verdict(send({ content: 'x'.repeat(4001), extra: 1 }))).toBe('invalid');
    expect(verdict(send({ content: 'x'.repeat(4001), clientMessageId: '' }))).toBe('invalid');
  });

  it('all three fields are required and typed; clientMessageId is 1-64 characters', () => {
    expect(verdict(send({ clientMessageId: 'x'.repeat(64) }))).toBe('ok');
    for (const over of [{ clientMessageId: '' }, { clientMessageId: 'x'.repeat(65) }, { clientMessageId: 5 }, { clientMessageId: 'a\u0000' }, { content: 5 }, { channelId: 5 }, { channelId: undefined }, { content: undefined }, { clientMessageId: undefined }]) {
      expect(verdict(send(over))).toBe('invalid');
    }
  });
});

describe('history', () => {
  it('cursors are non-negative integers; limit a positive integer; not both cursors', () => {
    const h = (p: Record<string, unknown>) => schemas.history.safeParse({ channelId: 'general', ...p }).success;
    expect(h({})).toBe(true);
    expect(h({ beforeSeq: 10, limit: 1000 })).toBe(true);
    expect(h({ afterSeq: 0, limit: 1 })).toBe(true);
    for (const bad of [{ limit: 0 }, { limit: -5 }, { limit: 2.5 }, { limit: '5' }, { afterSeq: -1 }, { beforeSeq: 1.5 }, { afterSeq: 1, beforeSeq: 5 }, { cursor: 1 }]) {
      expect(h(bad)).toBe(false);
    }
  });
});

describe('charLength', () => {
  it('counts code points, a lone surrogate as one', () => {
    expect(charLength('')).toBe(0);
    expect(charLength('a')).toBe(1);
    expect(charLength('a😀b')).toBe(3);
    expect(charLength('😀😀')).toBe(2);
    expect(charLength('\ud800')).toBe(1);
    expect(charLength('\ud800\ud800')).toBe(2);
    expect(charLength('x\udc00')).toBe(2);
  });
});

describe('describeIssues', () => {
  it('says what was wrong without echoing the input', () => {
    const r = send({ content: 'x'.repeat(4001) + 'SECRET-TOKEN' });
    const text = describeIssues(r.error!);
    expect(text).toMatch(/content/);
    expect(text).not.toContain('SECRET-TOKEN');
    expect(text.length).toBeLessThanOrEqual(200);
    const u = schemas.joinChannel.safeParse({ channelId: 'SECRET value' });
    expect(describeIssues(u.error!)).not.toContain('SECRET');
  });
});
