import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { extname, join } from 'node:path';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Chat } from '../core/chat.js';
import type { Metrics } from '../metrics.js';
import { AUTH_INVALID, AUTH_REQUIRED, ErrorCode, HTTP_STATUS, SwitchboardError, type ErrorBody, type Schemas, channelId as channelIdSchema, createSchemas, userId as userIdSchema } from 'switchboard-client/protocol';
import { AuthError, type Authenticator, type Principal, type TokenIssuer } from '../ports/authenticator.js';
import { invalidPayload } from './answers.js';
import { bearerToken } from './bearer.js';
import { openApiDocument } from './openapi.js';

export interface Readiness {
  ready: boolean;
  checks: Record<string, string>;
  reasons: string[];
}

export type HttpServer = FastifyInstance<Server, IncomingMessage, ServerResponse, Logger>;

export interface RouteDeps {
  config: Pick<Config, 'instanceId' | 'maxMessageLength' | 'production' | 'demo'>;
  chat: Chat;
  auth: Authenticator;
  /** Present in development only: signs tokens for /dev/token. */
  issuer: TokenIssuer | undefined;
  metrics: Metrics;
  readiness: () => Promise<Readiness>;
  /** Folder of the built demo page; served at / when the demo is on. */
  webDir?: string;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
  '.ico': 'image/x-icon',
};

const devTokenBody = z.strictObject({
  userId: userIdSchema,
  name: z.string().min(1).max(64).optional(),
  channels: z.array(channelIdSchema).max(1000).optional(),
  admin: z.boolean().optional(),
  ttlSeconds: z.number().int().min(1).max(7 * 24 * 3600).optional(),
});

function parse<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) throw invalidPayload(r.error);
  return r.data;
}

const sendError = (reply: FastifyReply, status: number, body: ErrorBody) => reply.code(status).send({ error: body });

/** The protocol's longest user id, in characters (a token's `sub`). */
const MAX_USER_ID_CHARS = 128;
/**
 * Router limit on one path parameter, counted on the percent-encoded path: a UTF-16 code unit takes
 * at most 3 UTF-8 bytes of 3 characters each (`%E2%82%AC`), so every user id the API accepts fits.
 */
const MAX_PARAM_LENGTH = MAX_USER_ID_CHARS * 9;

/** How often Node looks for requests over their timeout (its default, 30 s, would let one run that much longer). */
const CHECK_EVERY_MS = 1000;

/** Errors Node raises on a connection before any request exists, as [status, code, message]. */
const CLIENT_ERRORS: Record<string, [number, ErrorCode, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, ErrorCode.INVALID_PAYLOAD, 'The request was not received in time'],
  HPE_HEADER_OVERFLOW: [431, ErrorCode.PAYLOAD_TOO_LARGE, 'Request headers are too large'],
};

/** Answers a broken or too slow request in the contract's error shape, then closes the connection. */
function answerClientError(err: Error & { code?: string }, socket: Duplex, log: Logger): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message] = CLIENT_ERRORS[err.code ?? ''] ?? [400, ErrorCode.INVALID_PAYLOAD, 'Malformed HTTP request'];
  log.debug({ code: err.code }, 'HTTP client error');
  if (socket.writable) {
    const body = JSON.stringify({ error: { code, message } });
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  }
  socket.destroy();
}

/**
 * The contract's answer to an error Fastify or a route raised: `{error: {code, message}}` with a
 * status from HTTP_STATUS. Framework errors get a fixed message that never echoes the request.
 */
function httpError(err: unknown, maxFrameBytes: number): { status: number; body: ErrorBody } | undefined {
  if (err instanceof SwitchboardError) return { status: HTTP_STATUS[err.code], body: err.toBody() };
  const { statusCode: status, code } = err as { statusCode?: number; code?: string };
  const invalid = (message: string) => ({ status: 400, body: { code: ErrorCode.INVALID_PAYLOAD, message } });
  if (code === 'FST_ERR_BAD_URL') return invalid('Malformed URL (bad percent-encoding)');
  if (code === 'FST_ERR_MAX_PARAM_LENGTH') return invalid('A path parameter is too long');
  if (status === 413) return { status: 413, body: { code: ErrorCode.PAYLOAD_TOO_LARGE, message: `Body is larger than ${maxFrameBytes} bytes` } };
  if (status === 415) return invalid('Send JSON (Content-Type: application/json)');
  if (status !== undefined && status >= 400 && status < 500) return invalid('Malformed request (expected a JSON body)');
  return undefined;
}

/**
 * The HTTP server, without routes yet: Fastify with the contract's error bodies for every error,
 * the framework's own included. Socket.IO attaches to its `server`; `registerRoutes` adds the routes
 * once the core exists.
 */
export function createHttpServer(config: Pick<Config, 'maxFrameBytes' | 'trustProxy' | 'httpRequestTimeoutMs' | 'httpKeepAliveTimeoutMs'>, log: Logger): HttpServer {
  const answer = (err: unknown, reply: FastifyReply) => {
    const known = httpError(err, config.maxFrameBytes);
    if (known) return sendError(reply, known.status, known.body);
    log.error({ err }, 'HTTP request failed');
    return sendError(reply, 500, { code: ErrorCode.INTERNAL, message: 'Internal error' });
  };
  const app = Fastify({
    // Fastify's own "Server listening at …" lines (one per interface) would repeat the CLI's banner.
    loggerInstance: log.isLevelEnabled('debug') ? log : log.child({}, { level: 'warn' }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.maxFrameBytes,
    trustProxy: config.trustProxy.length > 0 ? [...config.trustProxy] : false,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    // A request, headers and body, must arrive within the timeout; a long-poll's request is complete
    // at once (only its answer waits), so these never cut one.
    requestTimeout: config.httpRequestTimeoutMs,
    keepAliveTimeout: config.httpKeepAliveTimeoutMs,
    http: { headersTimeout: config.httpRequestTimeoutMs, connectionsCheckingInterval: Math.min(CHECK_EVERY_MS, config.httpRequestTimeoutMs) },
    clientErrorHandler: (err, socket) => answerClientError(err, socket, log),
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Errors the router raises before any route (a bad URL, an over-long parameter).
    frameworkErrors: (err, _req, reply) => answer(err, reply),
  });
  app.setErrorHandler((err, _req, reply) => answer(err, reply));
  app.setNotFoundHandler((_req, reply) => sendError(reply, 404, { code: ErrorCode.NOT_FOUND, message: 'No such route' }));
  return app;
}

/** Health, metrics, the admin REST API, the development token endpoint and the demo page. */
export function registerRoutes(app: HttpServer, deps: RouteDeps): void {
  const schemas = createSchemas({ maxMessageLength: deps.config.maxMessageLength });
  const issuer = deps.config.production ? undefined : deps.issuer;
  probeRoutes(app, deps);
  apiRoutes(app, deps, schemas);
  const openApi = openApiDocument(schemas, { devTokenBody: issuer ? devTokenBody : undefined });
  app.get('/api/openapi.json', async () => openApi);
  if (issuer) devTokenRoute(app, issuer);
  if (deps.config.demo && deps.webDir && existsSync(join(deps.webDir, 'index.html'))) demoPage(app, deps.webDir);
}

function probeRoutes(app: HttpServer, deps: RouteDeps): void {
  const { instanceId } = deps.config;
  app.get('/healthz', async () => ({ status: 'ok', instanceId }));
  app.get('/readyz', async (_req, reply) => {
    const r = await deps.readiness();
    return reply
      .code(r.ready ? 200 : 503)
      .send({ status: r.ready ? 'ready' : 'not_ready', instanceId, checks: r.checks, ...(r.ready ? {} : { reasons: r.reasons }) });
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
}

/** The caller's identity from `Authorization: Bearer`; UNAUTHENTICATED without a valid token. */
async function principalOf(auth: Authenticator, req: FastifyRequest): Promise<Principal> {
  const token = bearerToken(req.headers.authorization);
  if (!token) throw new SwitchboardError(ErrorCode.UNAUTHENTICATED, AUTH_REQUIRED);
  try {
    return await auth.verify(token);
  } catch (err) {
    if (err instanceof AuthError) throw new SwitchboardError(ErrorCode.UNAUTHENTICATED, AUTH_INVALID);
    throw err;
  }
}

function apiRoutes(app: HttpServer, deps: RouteDeps, schemas: Schemas): void {
  const { channels, messaging } = deps.chat;
  const caller = (req: FastifyRequest) => principalOf(deps.auth, req);
  const admin = async (req: FastifyRequest) => {
    const p = await caller(req);
    if (!p.isAdmin) throw new SwitchboardError(ErrorCode.FORBIDDEN, 'Admin role required');
    return p;
  };
  const channelParam = (req: FastifyRequest) => parse(channelIdSchema, (req.params as { id?: unknown }).id);
  const userParam = (req: FastifyRequest) => parse(userIdSchema, (req.params as { userId?: unknown }).userId);

  app.get('/api/channels', async (req) => ({ channels: await channels.list(await caller(req)) }));
  app.post('/api/channels', async (req, reply) => {
    const p = await admin(req);
    const channel = await channels.create(p, parse(schemas.createChannel, req.body));
    return reply.code(201).send({ channel });
  });
  app.put('/api/channels/:id/members/:userId', async (req, reply) => {
    const p = await admin(req);
    await channels.grant(p, channelParam(req), userParam(req));
    return reply.code(204).send();
  });
  app.delete('/api/channels/:id/members/:userId', async (req, reply) => {
    const p = await admin(req);
    await channels.revoke(p, channelParam(req), userParam(req));
    return reply.code(204).send();
  });
  app.get('/api/channels/:id/messages', async (req) => {
    const p = await caller(req);
    const channelId = channelParam(req);
    const q = parse(schemas.historyQuery, { ...(req.query as object) });
    if (q.afterSeq !== undefined && q.beforeSeq !== undefined) {
      throw new SwitchboardError(ErrorCode.INVALID_PAYLOAD, 'give afterSeq or beforeSeq, not both');
    }
    return messaging.history(p, { channelId, ...q });
  });
  app.post('/api/channels/:id/messages', async (req, reply) => {
    const p = await admin(req);
    const channelId = channelParam(req);
    const body = parse(schemas.publish, req.body);
    const result = await messaging.publish(p, channelId, { ...body, clientMessageId: body.clientMessageId ?? randomUUID() });
    return reply.code(201).send(result.duplicate ? { message: result.message, duplicate: true } : { message: result.message });
  });
}

function devTokenRoute(app: HttpServer, issuer: TokenIssuer): void {
  app.post('/dev/token', async (req) => {
    const b = parse(devTokenBody, req.body);
    const token = await issuer.issue({
      userId: b.userId,
      ...(b.name ? { name: b.name } : {}),
      ...(b.channels ? { channels: b.channels } : {}),
      ...(b.admin ? { admin: true } : {}),
      ...(b.ttlSeconds ? { ttlSeconds: b.ttlSeconds } : {}),
    });
    return { token };
  });
}

function demoPage(app: HttpServer, webDir: string): void {
  // Only the files the build wrote are served, from memory: no path ever reaches the file system.
  const files = new Map<string, { type: string; body: Buffer }>();
  for (const name of readdirSync(webDir)) {
    const type = MIME[extname(name)];
    if (type) files.set(`/${name}`, { type, body: readFileSync(join(webDir, name)) });
  }
  app.get('/*', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    const file = files.get(path === '/' ? '/index.html' : path);
    if (!file) return sendError(reply, 404, { code: ErrorCode.NOT_FOUND, message: 'Not found' });
    return reply.header('content-type', file.type).header('cache-control', 'no-cache').send(file.body);
  });
}
