import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration suites share one RabbitMQ and one Redis: run files one at a time so
    // `rabbitmqctl close_all_connections` in one file cannot cut another file's connections.
    fileParallelism: false,
    pool: 'forks',
  },
});
