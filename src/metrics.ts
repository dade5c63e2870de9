import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ErrorCode, isClientEvent, type ClientEventName } from 'switchboard-client/protocol';
import { VERSION } from './version.js';

/** Why a connection was refused: the only values of `switchboard_handshake_refusals_total{reason}`. */
export const REFUSAL_REASONS = [
  'no_token',
  'invalid_token',
  'verifier_error',
  'too_many_connections',
  'rate_limited',
  'origin',
  'repeated_connects',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** The `event` label: a client event's name, or `unknown` for any other name a client sent. */
export type EventLabel = ClientEventName | 'unknown';

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

/** The labels whose values a client's input decides, mapped into their fixed sets at run time, whatever the types say. */
const eventLabel = (event: string): EventLabel => (isClientEvent(event) ? event : 'unknown');
const codeLabel = (code: string): string => (KNOWN_CODES.has(code) ? code : ErrorCode.INTERNAL);

/**
 * Every metric the server exports, on one registry owned by the app (no global state).
 *
 * Prometheus conventions: durations in seconds (`_seconds`), counters end in `_total`, and no series
 * carries an `instance` label of its own (Prometheus adds the scrape target's); the instance id is
 * one label of `switchboard_build_info`, to join on. Every label value comes from a fixed set: the
 * labelled metrics are reachable only through `refuseHandshake`, `eventFailed` and `acked`, which map
 * what a client sent into those sets, so no client can add a series.
 */
export function createMetrics(instanceId: string) {
  const { handshakeRefusals, eventErrors, ackLatency, ...unlabelled } = createRegistry(instanceId);
  return {
    ...unlabelled,
    /** Counts a refused connection; the reason is the server's own word, never a client's or an error's text. */
    refuseHandshake: (reason: RefusalReason) => handshakeRefusals.inc({ reason }),
    /** Counts an event answered with an error; an event name outside the protocol counts as `unknown`, a code outside the catalogue as INTERNAL. */
    eventFailed: (event: string, code: string) => eventErrors.inc({ event: eventLabel(event), code: codeLabel(code) }),
    /** Observes the time from receiving a client event to acknowledging it. */
    acked: (event: ClientEventName, seconds: number) => ackLatency.observe({ event: eventLabel(event) }, seconds),
  };
}

function createRegistry(instanceId: string) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });
  const seconds = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
  new Gauge({
    name: 'switchboard_build_info',
    help: 'Always 1; the labels say which version runs, on which Node.js, as which instance (INSTANCE_ID)',
    labelNames: ['version', 'nodejs_version', 'instance_id'] as const,
    registers: [registry],
  }).set({ version: VERSION, nodejs_version: process.version, instance_id: instanceId }, 1);
  return {
    registry,
    connections: new Gauge({ name: 'switchboard_connections', help: 'Open Socket.IO connections on this instance', registers: [registry] }),
    connectionsTotal: new Counter({ name: 'switchboard_connections_total', help: 'Accepted Socket.IO connections', registers: [registry] }),
    handshakeRefusals: new Counter({
      name: 'switchboard_handshake_refusals_total',
      help: 'Refused handshakes by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    joins: new Counter({ name: 'switchboard_joins_total', help: 'Successful join_channel events', registers: [registry] }),
    messagesReceived: new Counter({ name: 'switchboard_messages_received_total', help: 'send_message events received', registers: [registry] }),
    messagesStored: new Counter({ name: 'switchboard_messages_stored_total', help: 'Messages newly stored (duplicates excluded)', registers: [registry] }),
    messagesDuplicate: new Counter({ name: 'switchboard_messages_duplicate_total', help: 'Sends recognised as retries of a stored message', registers: [registry] }),
    messagesDelivered: new Counter({
      name: 'switchboard_messages_delivered_total',
      help: 'new_message deliveries written to sockets on this instance',
      registers: [registry],
    }),
    eventErrors: new Counter({
      name: 'switchboard_event_errors_total',
      help: 'Client events answered with an error, by event and code',
      labelNames: ['event', 'code'] as const,
      registers: [registry],
    }),
    ackLatency: new Histogram({
      name: 'switchboard_ack_duration_seconds',
      help: 'Time from receiving a client event to acknowledging it, by event',
      labelNames: ['event'] as const,
      buckets: seconds,
      registers: [registry],
    }),
    storeLatency: new Histogram({
      name: 'switchboard_store_write_duration_seconds',
      help: 'Duration of store writes (one batch each)',
      buckets: seconds,
      registers: [registry],
    }),
    storeBatchSize: new Histogram({
      name: 'switchboard_store_batch_size',
      help: 'Messages per store write batch',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      registers: [registry],
    }),
    brokerUp: new Gauge({ name: 'switchboard_broker_up', help: '1 when the Redis link answers, 0 when not (absent without Redis)', registers: [registry] }),
    slowConsumerDisconnects: new Counter({
      name: 'switchboard_slow_consumer_disconnects_total',
      help: 'Connections dropped because their outgoing buffer went over MAX_OUTGOING_BYTES or MAX_OUTGOING_PACKETS',
      registers: [registry],
    }),
    httpConnectionRefusals: new Counter({
      name: 'switchboard_http_connection_refusals_total',
      help: 'TCP connections refused because their client address had MAX_HTTP_CONNECTIONS_PER_IP open',
      registers: [registry],
    }),
    draining: new Gauge({ name: 'switchboard_draining', help: '1 while the instance shuts down', registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
