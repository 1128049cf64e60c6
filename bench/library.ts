/**
 * The library under test, as its users run it: the compiled build in dist/ (`npm run bench`
 * builds it first). Running the TypeScript sources through tsx instead wraps every function
 * expression in tsx's keepNames helper, which gives each closure its own property store:
 * measured here, about 10 KiB more heap per connection + channel and a few per cent of CPU on
 * the publish path, a cost no user of the package pays. The peers (amqplib, generic-pool...)
 * run as published, so this keeps the comparison even.
 *
 * KOMBU_TS_SOURCES=1 benchmarks the sources instead (no build needed).
 */
import type * as Library from '../src/index.js';

const entry = process.env.KOMBU_TS_SOURCES ? '../src/index.js' : '../dist/src/index.js';
const library = (await import(entry)) as typeof Library;

export const { Connection, Consumer, Exchange, Producer, Queue, resetMemoryBrokers } = library;
export type Connection = Library.Connection;
/** Which build is measured, for the report. */
export const measured = process.env.KOMBU_TS_SOURCES ? 'sources (tsx)' : 'compiled build (dist/)';
