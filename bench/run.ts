/**
 * `npm run bench`: every benchmark, peers side by side in the same run (not part of npm test).
 * Needs RabbitMQ on 127.0.0.1:5672 for the AMQP part. Run under `node --expose-gc`.
 */
import { amqpBench } from './amqp-bench.js';

await import('./pool-bench.js');
await amqpBench();
