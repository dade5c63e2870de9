import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { extname, join } from 'node:path';
import Fastify, { LogController, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Chat } from '../core/chat.js';
import type { Metrics } from '../metrics.js';
import { ErrorCode, HTTP_STATUS, SwitchboardError, type ErrorBody, channelId as channelIdSchema, createSchemas, describeIssues, isTooLarge, userId as userIdSchema } from 'switchboard-client/protocol';
import { AuthError, type Authenticator, type Principal, type TokenIssuer } from '../ports/authenticator.js';

export interface Readiness {
  ready: boolean;
  checks: Record<string, string>;
  reasons: string[];
}

export interface HttpDeps {
  config: Pick<Config, 'instanceId' | 'maxMessageLength' | 'maxFrameBytes' | 'production' | 'demo' | 'trustProxy'>;
  chat: Chat;
  auth: Authenticator;
  /** Present in development only: signs tokens for /dev/token. */
  issuer: TokenIssuer | undefined;
  metrics: Metrics;
  logger: Logger;
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

function invalid(error: z.ZodError): SwitchboardError {
  return new SwitchboardError(isTooLarge(error) ? ErrorCode.PAYLOAD_TOO_LARGE : ErrorCode.INVALID_PAYLOAD, describeIssues(error));
}

function parse<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) throw invalid(r.error);
  return r.data;
}

/** Health, metrics, the admin REST API, the development token endpoint and the demo page. */
export function buildHttp(deps: HttpDeps) {
  const { config, auth, metrics } = deps;
  // Read on each request: the app wires the chat after the server exists (Socket.IO needs the server first).
  const chat = () => deps.chat;
  const log = deps.logger;
  const schemas = createSchemas({ maxMessageLength: config.maxMessageLength });
  const app = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.maxFrameBytes,
    trustProxy: config.trustProxy.length > 0 ? [...config.trustProxy] : false,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  });

  const send = (reply: { code(n: number): { send(b: unknown): unknown } }, status: number, body: ErrorBody) =>
    reply.code(status).send({ error: body });

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof SwitchboardError) return send(reply, HTTP_STATUS[err.code], err.toBody());
    const status = (err as { statusCode?: number }).statusCode;
    if (status === 413) return send(reply, 413, { code: ErrorCode.PAYLOAD_TOO_LARGE, message: `Body is larger than ${config.maxFrameBytes} bytes` });
    if (status === 415) return send(reply, 400, { code: ErrorCode.INVALID_PAYLOAD, message: 'Send JSON (Content-Type: application/json)' });
    if (status !== undefined && status >= 400 && status < 500) {
      return send(reply, 400, { code: ErrorCode.INVALID_PAYLOAD, message: 'Malformed request body (expected JSON)' });
    }
    log.error({ err }, 'HTTP request failed');
    return send(reply, 500, { code: ErrorCode.INTERNAL, message: 'Internal error' });
  });
  app.setNotFoundHandler((req, reply) => send(reply, 404, { code: ErrorCode.NOT_FOUND, message: `No route ${req.method} ${req.url.split('?')[0]!.slice(0, 100)}` }));

  async function principalOf(req: FastifyRequest): Promise<Principal> {
    const header = req.headers.authorization;
    const token = header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
    if (!token) throw new SwitchboardError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
    try {
      return await auth.verify(token);
    } catch (err) {
      if (err instanceof AuthError) throw new SwitchboardError(ErrorCode.UNAUTHENTICATED, 'Invalid or expired token');
      throw err;
    }
  }
  async function adminOf(req: FastifyRequest): Promise<Principal> {
    const p = await principalOf(req);
    if (!p.isAdmin) throw new SwitchboardError(ErrorCode.FORBIDDEN, 'Admin role required');
    return p;
  }
  const idParam = (req: FastifyRequest) => parse(channelIdSchema, (req.params as { id?: unknown }).id);

  app.get('/healthz', async () => ({ status: 'ok', instanceId: config.instanceId }));

  app.get('/readyz', async (_req, reply) => {
    const r = await deps.readiness();
    return reply
      .code(r.ready ? 200 : 503)
      .send({ status: r.ready ? 'ready' : 'not_ready', instanceId: config.instanceId, checks: r.checks, ...(r.ready ? {} : { reasons: r.reasons }) });
  });

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  app.get('/api/channels', async (req) => {
    const p = await principalOf(req);
    const channels = await chat().listChannels(p);
    return { channels };
  });

  app.post('/api/channels', async (req, reply) => {
    const p = await adminOf(req);
    const body = parse(schemas.createChannel, req.body);
    const channel = await chat().createChannel(p, body);
    return reply.code(201).send({ channel });
  });

  app.put('/api/channels/:id/members/:userId', async (req, reply) => {
    const p = await adminOf(req);
    const userId = parse(userIdSchema, (req.params as { userId?: unknown }).userId);
    await chat().grant(p, idParam(req), userId);
    return reply.code(204).send();
  });

  app.delete('/api/channels/:id/members/:userId', async (req, reply) => {
    const p = await adminOf(req);
    const userId = parse(userIdSchema, (req.params as { userId?: unknown }).userId);
    await chat().revoke(p, idParam(req), userId);
    return reply.code(204).send();
  });

  app.get('/api/channels/:id/messages', async (req) => {
    const p = await principalOf(req);
    const channelId = idParam(req);
    const q = parse(schemas.historyQuery, { ...(req.query as object) });
    if (q.afterSeq !== undefined && q.beforeSeq !== undefined) {
      throw new SwitchboardError(ErrorCode.INVALID_PAYLOAD, 'give afterSeq or beforeSeq, not both');
    }
    return chat().history(p, { channelId, ...q });
  });

  app.post('/api/channels/:id/messages', async (req, reply) => {
    const p = await adminOf(req);
    const channelId = idParam(req);
    const body = parse(schemas.publish, req.body);
    const result = await chat().publish(p, channelId, { ...body, clientMessageId: body.clientMessageId ?? randomUUID() });
    return reply.code(201).send(result.duplicate ? { message: result.message, duplicate: true } : { message: result.message });
  });

  if (!config.production && deps.issuer) {
    const issuer = deps.issuer;
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

  if (config.demo && deps.webDir && existsSync(join(deps.webDir, 'index.html'))) {
    // Only the files the build wrote are served, from memory: no path ever reaches the file system.
    const files = new Map<string, { type: string; body: Buffer }>();
    for (const name of readdirSync(deps.webDir)) {
      const type = MIME[extname(name)];
      if (type) files.set(`/${name}`, { type, body: readFileSync(join(deps.webDir, name)) });
    }
    app.get('/*', async (req, reply) => {
      const path = req.url.split('?')[0]!;
      const file = files.get(path === '/' ? '/index.html' : path);
      if (!file) return send(reply, 404, { code: ErrorCode.NOT_FOUND, message: 'Not found' });
      return reply.header('content-type', file.type).header('cache-control', 'no-cache').send(file.body);
    });
  }

  return app;
}
export type HttpServer = ReturnType<typeof buildHttp>;
