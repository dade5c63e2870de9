/**
 * GET /api/openapi.json: a valid OpenAPI 3.1 document that lists every route the server has and every
 * status it was seen to answer (each route exercised with good and bad requests).
 */
import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken, http, unique } from '../helpers/api.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { onDevSecret, token } from '../helpers/tokens.js';

type Doc = { openapi: string; paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
const METHODS = ['get', 'post', 'put', 'delete', 'patch'];

/** "/api/channels/:id/members/:userId" → "/api/channels/{id}/members/{userId}" */
const template = (path: string) => path.replace(/:(\w+)/g, '{$1}');

/**
 * Every (method, path) Fastify routes, read from its own route tree (printRoutes: each level indented
 * by four characters, a child's segment continuing its parent's). The HEAD routes Fastify adds for
 * GETs and the demo page's catch-all are left out.
 */
function fastifyRoutes(server: TestServer): string[] {
  const routes: string[] = [];
  const stack: string[] = [];
  for (const line of server.app.http.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^([│├└─\s]*)(\S+)(?: \(([^)]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    for (const method of (m[3] ?? '').split(',').map((s) => s.trim().toLowerCase())) {
      if (method && method !== 'head') routes.push(`${method} ${template(stack.join(''))}`);
    }
  }
  return routes.filter((r) => !r.endsWith(' *')).sort();
}

describe('GET /api/openapi.json', () => {
  let server: TestServer;
  let doc: Doc;
  // On the generated development secret, so that /dev/token exists and is documented too.
  const devSecret = onDevSecret();
  beforeAll(async () => {
    server = await startServer({ ...devSecret.env, MAX_FRAME_BYTES: '2048' });
    const r = await http(server.url, 'GET', '/api/openapi.json');
    expect(r.status).toBe(200);
    doc = r.body as Doc;
  });
  afterAll(async () => {
    await server.close();
    devSecret.remove();
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).toBe('3.1.0');
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeTruthy();
  });

  it('lists every route the server has, and no other', () => {
    const documented = Object.entries(doc.paths)
      .flatMap(([path, item]) => Object.keys(item).filter((k) => METHODS.includes(k)).map((m) => `${m} ${path}`))
      .sort();
    expect(documented).toEqual(fastifyRoutes(server));
  });

  it('documents every status each route answers', async () => {
    const admin = await adminToken();
    const user = await token('openapi-user');
    const channel = unique('oa');
    const seen: [string, string, number][] = [];
    const hit = async (method: string, path: string, route: string, options: Parameters<typeof http>[3] = {}) => {
      const r = await http(server.url, method, path, options);
      seen.push([method.toLowerCase(), route, r.status]);
      return r;
    };
    const tooBig = 'x'.repeat(4096);
    await hit('GET', '/healthz', '/healthz');
    await hit('GET', '/readyz', '/readyz');
    await hit('GET', '/metrics', '/metrics');
    await hit('GET', '/api/openapi.json', '/api/openapi.json');
    for (const t of [undefined, 'not-a-jwt', user, admin]) await hit('GET', '/api/channels', '/api/channels', { token: t });
    for (const [t, body] of [[undefined, { id: channel }], [user, { id: channel }], [admin, { id: 'bad id' }], [admin, { id: channel, private: true }], [admin, { id: channel }]] as const) {
      await hit('POST', '/api/channels', '/api/channels', { token: t, body });
    }
    await hit('POST', '/api/channels', '/api/channels', { token: admin, raw: JSON.stringify({ id: tooBig }) });
    const members = '/api/channels/{id}/members/{userId}';
    for (const method of ['PUT', 'DELETE']) {
      for (const [t, c] of [[undefined, channel], [user, channel], [admin, channel], [admin, unique('missing')], [admin, 'bad id']] as const) {
        await hit(method, `/api/channels/${encodeURIComponent(c)}/members/dan`, members, { token: t });
      }
    }
    const messages = '/api/channels/{id}/messages';
    for (const [t, c, q] of [[undefined, 'general', ''], [user, 'general', ''], [user, channel, ''], [user, 'general', '?limit=0'], [admin, 'general', '?afterSeq=1&beforeSeq=3']] as const) {
      await hit('GET', `/api/channels/${c}/messages${q}`, messages, { token: t });
    }
    for (const [t, c, body] of [[undefined, 'general', { content: 'hi' }], [user, 'general', { content: 'hi' }], [admin, 'general', { content: 'hi' }], [admin, unique('missing'), { content: 'hi' }], [admin, 'general', { content: '' }]] as const) {
      await hit('POST', `/api/channels/${c}/messages`, messages, { token: t, body });
    }
    for (const body of [{ userId: 'alice' }, { userId: '' }]) await hit('POST', '/dev/token', '/dev/token', { body });

    const missing = seen.filter(([method, route, status]) => doc.paths[route]?.[method]?.responses[String(status)] === undefined);
    expect(missing).toEqual([]);
    // The exercise covered the outcomes that matter: success, and each error class the API answers.
    expect(new Set(seen.map(([, , s]) => s))).toEqual(new Set([200, 201, 204, 400, 401, 403, 404, 409, 413]));
  });
});
