import { randomBytes } from 'node:crypto';
import { token } from './tokens.js';

/** A channel id (or user id) no other test uses. */
export const unique = (label: string): string => `${label}-${randomBytes(4).toString('hex')}`;

export interface JsonResponse {
  status: number;
  headers: Headers;
  body: any;
}

/** fetch with a JSON body (or a raw string), answering the parsed JSON body (or the text when it is not JSON). */
export async function http(
  url: string,
  method: string,
  path: string,
  options: { token?: string | undefined; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<JsonResponse> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers['authorization'] = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.raw !== undefined) {
    body = options.raw;
    headers['content-type'] ??= 'application/json';
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

export const adminToken = () => token('admin', { admin: true });

/** Creates a channel through the admin API; throws unless it answers 201. */
export async function createChannel(url: string, id: string, options: { private?: boolean; name?: string } = {}): Promise<void> {
  const r = await http(url, 'POST', '/api/channels', {
    token: await adminToken(),
    body: { id, ...(options.private !== undefined ? { private: options.private } : {}), ...(options.name ? { name: options.name } : {}) },
  });
  if (r.status !== 201) throw new Error(`creating channel ${id} answered ${r.status}: ${JSON.stringify(r.body)}`);
}

/** Publishes `count` messages through the admin API, in order (seq 1..count on a fresh channel). */
export async function publishMany(url: string, channelId: string, count: number, userId = 'seeder'): Promise<void> {
  const t = await adminToken();
  for (let i = 0; i < count; i += 25) {
    const chunk = Array.from({ length: Math.min(25, count - i) }, (_, j) => i + j);
    // Chunks in parallel are still stored in order per request; order within a chunk does not matter to callers.
    const rs = await Promise.all(
      chunk.map((k) => http(url, 'POST', `/api/channels/${encodeURIComponent(channelId)}/messages`, { token: t, body: { content: `seed ${k}`, userId, clientMessageId: `seed-${k}` } })),
    );
    const bad = rs.find((r) => r.status !== 201);
    if (bad) throw new Error(`publishing to ${channelId} answered ${bad.status}: ${JSON.stringify(bad.body)}`);
  }
}
