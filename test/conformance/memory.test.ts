import { getMemoryBroker } from '../../src/index.js';
import { runConformance } from './suite.js';

const broker = getMemoryBroker('conformance');

runConformance('memory://conformance', {
  connectionOptions: { retryPolicy: { intervalStart: 0.02, intervalStep: 0.02, intervalMax: 0.1 } },
  dropConnections: async () => broker.dropConnections(),
  block: async () => {
    broker.blockConnections();
    return async () => broker.unblockConnections();
  },
  outage: async () => {
    broker.refuseConnections = true;
    broker.dropConnections();
    return async () => {
      broker.refuseConnections = false;
    };
  },
});
