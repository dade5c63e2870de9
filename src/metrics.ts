import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Every metric the server exports, on one registry owned by the app (no global state). */
export function createMetrics(instanceId: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ instance: instanceId });
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });
  const ms = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];
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
      name: 'switchboard_ack_latency_ms',
      help: 'Time from receiving an event to acknowledging it',
      labelNames: ['event'] as const,
      buckets: ms,
      registers: [registry],
    }),
    storeLatency: new Histogram({
      name: 'switchboard_store_latency_ms',
      help: 'Duration of store writes (one batch each)',
      buckets: ms,
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
    draining: new Gauge({ name: 'switchboard_draining', help: '1 while the instance shuts down', registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
