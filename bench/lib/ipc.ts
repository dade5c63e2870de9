/** Messages between the bench controller and its load-generator processes. */

export interface ConnSpec {
  /** Index in the whole population (round-robin over instances uses it). */
  index: number;
  url: string;
  userId: string;
  channel: string;
  sender: boolean;
}

export type ToWorker =
  | { type: 'connect'; conns: ConnSpec[]; secret: string; batch: boolean; join: boolean; concurrency: number }
  | { type: 'join' }
  | {
      type: 'step';
      step: number;
      /** Messages per second this worker sends, spread over its senders. */
      rate: number;
      warmupMs: number;
      measureMs: number;
      payload: number;
      /** Whether the system acknowledges send_message (the recipe does not). */
      acks: boolean;
    }
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'connected'; ok: number; failed: number; firstError?: string; startedAt: number; doneAt: number }
  | { type: 'joined'; ok: number; failed: number; firstError?: string }
  | {
      type: 'stepDone';
      step: number;
      sentMeasured: number;
      /** Time of the first and last measured send (ms, wall clock). */
      measureStart: number;
      measureEnd: number;
      acksOk: number;
      acksErr: number;
      firstAckError?: string;
      deliveries: number;
      /** Frames that carried them (a batched frame carries several). */
      frames: number;
      /** Sparse latency histogram: [bucket, count] pairs (see histogram.ts). */
      hist: [number, number][];
      dropped: number;
      cpuMs: number;
    }
  | { type: 'closed' };
