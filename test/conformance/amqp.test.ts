import { afterAll, describe } from 'vitest';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { RABBITMQ_HOST, RABBITMQ_PORT, memoryAlarm, rabbitmqctl, requireRabbitmq } from '../helpers/rabbitmq.js';
import { runConformance } from './suite.js';

// The same suite as memory.test.ts, on real RabbitMQ twice: straight to the broker, with the
// outages made by the broker itself, and behind the fault proxy, with the link cut under it.
const reachable = await requireRabbitmq('conformance/amqp.test');
const fast = { retryPolicy: { intervalStart: 0.05, intervalStep: 0.05, intervalMax: 0.2 } };

describe.skipIf(!reachable)('amqp:// straight to RabbitMQ', () => {
  runConformance(`amqp://guest:guest@${RABBITMQ_HOST}:${RABBITMQ_PORT}//`, {
    connectionOptions: fast,
    // connection.close (320 CONNECTION_FORCED) from the broker to every client.
    dropConnections: async () => void (await rabbitmqctl('close_all_connections', 'conformance: dropped')),
    block: memoryAlarm,
    // No new connections until the listeners resume; the live ones are closed.
    outage: async () => {
      await rabbitmqctl('suspend_listeners');
      try {
        await rabbitmqctl('close_all_connections', 'conformance: outage');
      } catch (error) {
        await rabbitmqctl('resume_listeners');
        throw error;
      }
      return async () => void (await rabbitmqctl('resume_listeners'));
    },
  });
});

const proxy = reachable ? await startFaultProxy({ targetPort: RABBITMQ_PORT }) : undefined;
afterAll(() => proxy?.close());
describe.skipIf(!proxy)('amqp:// behind the fault proxy', () => {
  if (!proxy) return;
  runConformance(`amqp://guest:guest@127.0.0.1:${proxy.port}//`, {
    connectionOptions: fast,
    dropConnections: async () => proxy.cut(),
    block: memoryAlarm,
    outage: async () => {
      proxy.refuse(true);
      proxy.cut();
      return async () => proxy.refuse(false);
    },
  });
});
