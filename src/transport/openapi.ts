import { z } from 'zod';
import { channelId, ErrorCode, type ErrorBody, type Message, type Schemas, userId } from 'switchboard-client/protocol';
import type { Channel } from '../ports/message-store.js';
import { VERSION } from '../version.js';

/**
 * The OpenAPI 3.1 description of the HTTP API, served at `GET /api/openapi.json`. Request bodies and
 * parameters are converted from the same zod schemas the routes validate with (zod's own JSON Schema
 * output, which is draft 2020-12, OpenAPI 3.1's dialect); the response shapes below are tied to the
 * protocol's types at compile time (`satisfies`), so neither can drift from the code unnoticed.
 * test/integration/openapi.test.ts checks that every route and every status the server answers is here.
 */

const iso = z.string().describe('ISO 8601');
const message = z.object({
  id: z.string().describe('unique across the cluster'),
  seq: z.number().int().min(1).describe("the channel's gapless sequence number"),
  channelId,
  userId: z.string().describe('the sender; `system` for server publishes'),
  content: z.string(),
  timestamp: iso,
  clientMessageId: z.string(),
}) satisfies z.ZodType<Message>;
const channel = z.object({ id: channelId, name: z.string(), isPrivate: z.boolean(), lastSeq: z.number().int().min(0), createdAt: iso }) satisfies z.ZodType<Channel>;
const errorBody = z.object({
  error: z.object({
    code: z.enum(Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
    retryAfterMs: z.number().int().optional().describe('with RATE_LIMITED: when to retry'),
  }) satisfies z.ZodType<ErrorBody>,
});
const page = z.object({ messages: z.array(message).describe('oldest first'), hasMore: z.boolean() });

type Json = Record<string, unknown>;
const schema = (s: z.ZodType): Json => {
  const { $schema: _, ...rest } = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Json;
  return rest;
};
const json = (s: z.ZodType) => ({ content: { 'application/json': { schema: schema(s) } } });
const ok = (description: string, s?: z.ZodType) => ({ description, ...(s ? json(s) : {}) });

const STATUS_TEXT: Record<number, string> = {
  400: 'INVALID_PAYLOAD: the body, a parameter or the query does not match its schema',
  401: 'UNAUTHENTICATED: no bearer token, or one that failed verification',
  403: 'FORBIDDEN: not an admin, or no access to the channel',
  404: 'NOT_FOUND: no such channel (for admins) or route',
  409: 'CONFLICT: the channel id is taken',
  413: 'PAYLOAD_TOO_LARGE: the body is over MAX_FRAME_BYTES',
  429: 'RATE_LIMITED: over a limit; retry after `retryAfterMs`',
  503: 'UNAVAILABLE: the store does not answer; nothing was stored',
};
const errors = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [String(s), { description: STATUS_TEXT[s], ...json(errorBody) }]));
/** What every authenticated API route can answer besides its own outcomes. */
const API_ERRORS = [400, 401, 403, 413, 429, 503];

const pathParam = (name: string, s: z.ZodType, description: string) => ({ name, in: 'path', required: true, description, schema: schema(s) });
const channelParam = pathParam('id', channelId, 'channel id');
const userParam = pathParam('userId', userId, "the user's id (a token's `sub`)");
const bearer = [{ bearer: [] }];

/** `devTokenBody`: the body schema of `POST /dev/token`, when that route exists. */
export function openApiDocument(schemas: Schemas, options: { devTokenBody?: z.ZodType | undefined }): Json {
  const historyQuery = z.toJSONSchema(schemas.historyQuery, { io: 'input' }) as { properties: Record<string, Json> };
  const paths: Json = {
    '/healthz': { get: { summary: 'Liveness: 200 while the process runs', responses: { 200: ok('alive', z.object({ status: z.literal('ok'), instanceId: z.string() })) } } },
    '/readyz': {
      get: {
        summary: 'Readiness: 200 when the store (and Redis) answer and the instance is not draining',
        responses: {
          200: ok('ready', z.object({ status: z.literal('ready'), instanceId: z.string(), checks: z.record(z.string(), z.string()) })),
          503: ok('not ready, with the reasons', z.object({ status: z.literal('not_ready'), instanceId: z.string(), checks: z.record(z.string(), z.string()), reasons: z.array(z.string()) })),
        },
      },
    },
    '/metrics': { get: { summary: 'Prometheus text format', responses: { 200: { description: 'metrics', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
    '/api/openapi.json': { get: { summary: 'This document', responses: { 200: { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } } } },
    '/api/channels': {
      get: { summary: 'Channels the caller may join', security: bearer, responses: { 200: ok('the channels', z.object({ channels: z.array(channel) })), ...errors(...API_ERRORS) } },
      post: {
        summary: 'Admin: create a channel',
        security: bearer,
        requestBody: { required: true, ...json(schemas.createChannel) },
        responses: { 201: ok('created', z.object({ channel })), ...errors(...API_ERRORS, 409) },
      },
    },
    '/api/channels/{id}/members/{userId}': {
      parameters: [channelParam, userParam],
      put: { summary: 'Admin: grant a user access to a private channel', security: bearer, responses: { 204: ok('granted'), ...errors(...API_ERRORS, 404) } },
      delete: { summary: "Admin: revoke a user's access; the user's sockets leave the channel on every instance", security: bearer, responses: { 204: ok('revoked'), ...errors(...API_ERRORS, 404) } },
    },
    '/api/channels/{id}/messages': {
      parameters: [channelParam],
      get: {
        summary: 'History, paged as the `history` event: oldest first in every page',
        security: bearer,
        parameters: Object.entries(historyQuery.properties).map(([name, s]) => ({ name, in: 'query', required: false, schema: s })),
        responses: { 200: ok('a page', page), ...errors(...API_ERRORS) },
      },
      post: {
        summary: 'Admin: publish as the server (`system`) or as a user; reaches every instance',
        security: bearer,
        requestBody: { required: true, ...json(schemas.publish) },
        responses: { 201: ok('stored and broadcast', z.object({ message, duplicate: z.boolean().optional() })), ...errors(...API_ERRORS, 404) },
      },
    },
  };
  if (options.devTokenBody) {
    paths['/dev/token'] = {
      post: {
        summary: 'Development only (generated development secret): a signed token',
        requestBody: { required: true, ...json(options.devTokenBody) },
        responses: { 200: ok('the token', z.object({ token: z.string() })), ...errors(400, 413) },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Switchboard HTTP API', version: VERSION, description: 'Health, metrics and the admin REST API. The real-time protocol is Socket.IO: see docs/protocol.md.' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    paths,
  };
}
