import { sleep } from '../helpers/ports.js';
import type { Slot, World } from './world.js';

export interface FaultContext {
  world: World;
  log: (line: string) => void;
  /** Which instance a single-instance fault hits this time (rotates over the run). */
  pick(): Slot;
}

export interface Fault {
  name: string;
  run(ctx: FaultContext): Promise<void>;
}

const running = (slot: Slot) => {
  if (!slot.instance) throw new Error(`instance ${slot.name} is not running`);
  return slot.instance;
};

/** Every fault of issue 7 item 6, each ending with the system whole again (processes back, links restored). */
export const FAULTS: readonly Fault[] = [
  {
    name: 'kill -9 an instance',
    async run({ world, log, pick }) {
      const slot = pick();
      slot.expecting = 'kill';
      await running(slot).kill();
      log(`killed ${slot.name} (SIGKILL); restarting in 1.5 s`);
      await sleep(1500);
      await world.restart(slot);
    },
  },
  {
    name: 'SIGTERM an instance (rolling deploy) and restart it',
    async run({ world, log, pick }) {
      const slot = pick();
      slot.expecting = 'term';
      const exit = await running(slot).stop('SIGTERM');
      log(`${slot.name} drained and exited (${exit}); restarting`);
      await world.restart(slot);
    },
  },
  {
    name: 'restart Redis',
    async run({ world, log }) {
      await world.redis.restart();
      log('redis-server killed and started again (empty: no persistence)');
      await sleep(3000);
    },
  },
  {
    name: 'pause Redis (SIGSTOP) past the client timeouts',
    async run({ world, log }) {
      world.redis.pause();
      log('redis-server stopped (SIGSTOP) for 12 s (SDK ack timeout 10 s, Redis command timeout 2 s)');
      await sleep(12_000);
      world.redis.resume();
      log('redis-server continued (SIGCONT)');
      await sleep(3000);
    },
  },
  {
    name: 'make PostgreSQL unreachable',
    async run({ world, log }) {
      await world.db.proxy.cut();
      log('PostgreSQL link cut for 5 s (connections reset, new ones refused)');
      await sleep(5000);
      await world.db.proxy.restore();
      log('PostgreSQL link restored');
      await sleep(2000);
    },
  },
  {
    name: 'crash an instance between storing a message and broadcasting it',
    async run({ world, log, pick }) {
      const slot = pick();
      const inst = running(slot);
      slot.expecting = 'fault';
      // Arms the test-only hook (SWITCHBOARD_FAULT_CRASH_AFTER_STORE=signal): the next stored message kills it.
      inst.proc.kill('SIGUSR2');
      const exit = await Promise.race([inst.exited, sleep(15_000).then(() => 'still running' as const)]);
      if (exit === 'still running') {
        log(`${slot.name} stored nothing within 15 s of arming the hook; killing it instead`);
        slot.expecting = 'kill';
        await inst.kill();
      } else {
        log(`${slot.name} crashed after storing a message, before broadcasting it (exit ${exit}); restarting`);
      }
      await world.restart(slot);
    },
  },
  {
    name: 'cut one instance off from Redis while the others keep it',
    async run({ world, log, pick }) {
      const slot = pick();
      await slot.redisProxy.cut();
      log(`${slot.name} cut off from Redis for 8 s`);
      await sleep(8000);
      await slot.redisProxy.restore();
      log(`${slot.name} reconnected to Redis`);
      await sleep(3000);
    },
  },
  {
    name: "drop clients' network mid-send",
    async run({ world, log }) {
      await Promise.all(world.slots.map((s) => s.clientProxy.cut()));
      log('network of the proxied clients dropped for 3 s (sockets reset mid-send)');
      await sleep(3000);
      await Promise.all(world.slots.map((s) => s.clientProxy.restore()));
      log('network of the proxied clients back');
      await sleep(2000);
    },
  },
  {
    name: 'restart all instances at once (reconnect storm)',
    async run({ world, log }) {
      for (const s of world.slots) s.expecting = 'kill';
      await Promise.all(world.slots.map((s) => running(s).kill()));
      log('all instances killed (SIGKILL); restarting them together');
      await Promise.all(world.slots.map((s) => world.restart(s)));
      await sleep(2000);
    },
  },
];
