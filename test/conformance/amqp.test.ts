import { afterAll, describe } from 'vitest';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { memoryAlarm, requireRabbitmq } from '../helpers/rabbitmq.js';
import { runConformance } from './suite.js';

// The same suite as memory.test.ts, on real RabbitMQ behind the fault proxy (for the outages).
const reachable = await requireRabbitmq('conformance/amqp.test');
const proxy = reachable ? await startFaultProxy({ targetPort: 5672 }) : undefined;
afterAll(() => proxy?.close());
describe.skipIf(!proxy)('amqp://', () => {
  if (!proxy) return;
  runConformance(`amqp://guest:guest@127.0.0.1:${proxy.port}//`, {
    connectionOptions: { retryPolicy: { intervalStart: 0.05, intervalStep: 0.05, intervalMax: 0.2 } },
    dropConnections: async () => proxy.cut(),
    block: memoryAlarm,
    outage: async () => {
      proxy.refuse(true);
      proxy.cut();
      return async () => proxy.refuse(false);
    },
  });
});
