/** The rules of the environment table (table.ts): each parses a variable's non-empty text into its value. */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { CHANNEL_ID_PATTERN } from 'switchboard-client/protocol';

/** A limit of `points` per `durationMs`, written `100/5s` in the environment. */
export interface RateSpec {
  points: number;
  durationMs: number;
}

export type RedisAdapterKind = 'sharded' | 'classic' | 'streams';

/** How log lines look: `auto` picks `pretty` on a terminal outside production, else `json`. */
export type LogFormat = 'auto' | 'json' | 'pretty';

export interface PublicKey {
  key: KeyObject;
  alg: 'RS256' | 'ES256';
}

/** When the test-only fault hook crashes the process (SWITCHBOARD_FAULT_CRASH_AFTER_STORE). */
export type CrashAfterStoreSpec =
  | { kind: 'probability'; p: number }
  | { kind: 'nth'; n: number }
  | { kind: 'signal' };

export const text = z.string().min(1);

export const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const RATE = /^(\d+)\/(\d+)(ms|s|m|h)$/;
export const rate = z
  .string()
  .regex(RATE, 'must look like 100/5s (points per duration; units ms, s, m, h)')
  .transform((v): RateSpec => {
    const [, points, amount, unit] = RATE.exec(v)!;
    return { points: Number(points), durationMs: Number(amount) * UNITS[unit!]! };
  })
  .refine((r) => r.points >= 1 && r.durationMs >= 1, 'points and duration must be positive');

export const logFormat = z.enum(['auto', 'json', 'pretty']) satisfies z.ZodType<LogFormat>;

export const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

export const list = z.string().transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean));

export const origins = list
  .refine((l) => !l.includes('*'), "must list exact origins; '*' cannot be combined with credentials")
  .refine((l) => l.every((o) => /^https?:\/\/[^/\s]+$/.test(o)), 'must be a comma list of origins like https://chat.example.com');

export const channelIds = list.refine(
  (l) => l.every((c) => CHANNEL_ID_PATTERN.test(c)),
  'channel ids are 1-64 characters of A-Z a-z 0-9 _ - . :',
);

export const instanceId = z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 _ . : -');

export const databaseUrl = z
  .string()
  .refine((v) => /^sqlite:.+/.test(v) || /^postgres(ql)?:\/\/.+/.test(v), 'must be sqlite:<path> or postgres://…');

export const redisUrl = z.string().refine((v) => /^rediss?:\/\/.+/.test(v), 'must be redis://… or rediss://…');

export const httpUrl = z
  .string()
  .url('must be an http(s) URL')
  .transform((v) => new URL(v));

export const hmacSecret = z.string().refine((v) => Buffer.byteLength(v, 'utf8') >= 32, 'must be at least 32 bytes (UTF-8) long');

/** A PEM public key (literal `\n` escapes accepted): RSA is RS256, P-256 EC is ES256. */
export const publicKey = z.string().transform((pem, ctx): PublicKey => {
  let key: KeyObject;
  try {
    key = createPublicKey(pem.replace(/\\n/g, '\n'));
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is not a PEM public key (expected -----BEGIN PUBLIC KEY-----)' });
    return z.NEVER;
  }
  if (key.asymmetricKeyType === 'rsa') return { key, alg: 'RS256' };
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return { key, alg: 'ES256' };
  ctx.addIssue({ code: 'custom', message: 'must be an RSA key (RS256) or a P-256 EC key (ES256)' });
  return z.NEVER;
});

export const crashAfterStore = z.string().transform((v, ctx): CrashAfterStoreSpec => {
  if (v === 'signal') return { kind: 'signal' };
  if (/^nth:\d+$/.test(v)) return { kind: 'nth', n: Number(v.slice(4)) };
  if (/^(0(\.\d+)?|1)$/.test(v)) return { kind: 'probability', p: Number(v) };
  ctx.addIssue({ code: 'custom', message: 'expected a probability (0.01), nth:<N> or signal' });
  return z.NEVER;
});
