import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/**
 * Watches the Redis link with a PING every `intervalMs`. A stalled server (SIGSTOP, a network
 * partition) keeps its TCP connection open, so connection events alone would not notice it.
 * `onChange` fires on every transition; the first state is "up" (start-up waited for Redis).
 */
export class BrokerHealth {
  private up = true;
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly redis: Pick<Redis, 'ping'>,
    private readonly log: Logger,
    private readonly onChange: (up: boolean) => void,
    private readonly intervalMs = 1000,
  ) {}

  get isUp(): boolean {
    return this.up;
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async check(): Promise<boolean> {
    if (this.running) return this.up;
    this.running = true;
    let ok: boolean;
    try {
      ok = (await this.redis.ping()) === 'PONG';
    } catch {
      ok = false;
    } finally {
      this.running = false;
    }
    if (ok !== this.up) {
      this.up = ok;
      if (ok) this.log.info('Redis link is back; telling clients to resync what they may have missed');
      else this.log.warn('Redis link is down: serving local clients only; cross-instance delivery resumes when it is back');
      this.onChange(ok);
    }
    return ok;
  }
}
