import { describe, expect, it } from 'vitest';
import { AckBatch } from '../../../src/transports/amqp-acks.js';

const tick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));

describe('AckBatch', () => {
  it('turns a run of acks from the oldest unsettled delivery into one multiple ack, plus the rest one by one', () => {
    const acks = new AckBatch(() => undefined);
    for (const tag of [1, 2, 3, 4, 5]) acks.received(tag);
    for (const tag of [2, 1, 5]) expect(acks.defer(tag)).toBe(true);
    expect(acks.take()).toEqual({ upTo: 2, single: [5] });
    expect(acks.take()).toBeUndefined();
    // 3 and 4 are still unsettled: acking 4 alone cannot use multiple.
    acks.defer(4);
    expect(acks.take()).toEqual({ upTo: undefined, single: [4] });
  });

  it('a run of one is a single ack', () => {
    const acks = new AckBatch(() => undefined);
    acks.received(7);
    acks.received(8);
    acks.defer(7);
    expect(acks.take()).toEqual({ upTo: undefined, single: [7] });
  });

  it('refuses to defer a tag it never saw (the caller sends that ack itself)', () => {
    const acks = new AckBatch(() => undefined);
    acks.received(1);
    expect(acks.defer(2)).toBe(false);
    expect(acks.take()).toBeUndefined();
  });

  it('asks for one flush on the next tick, however many acks are deferred', async () => {
    let due = 0;
    const acks = new AckBatch(() => {
      due += 1;
      acks.take();
    });
    for (const tag of [1, 2, 3]) acks.received(tag);
    acks.defer(1);
    acks.defer(2);
    expect(due).toBe(0);
    await tick();
    expect(due).toBe(1);
    acks.defer(3);
    await tick();
    expect(due).toBe(2);
  });

  it('settled() with multiple forgets every delivery up to the tag (0: all); clear() forgets everything', () => {
    const acks = new AckBatch(() => undefined);
    for (const tag of [1, 2, 3, 4]) acks.received(tag);
    acks.settled(2, true);
    expect(acks.defer(1)).toBe(false);
    expect(acks.defer(3)).toBe(true);
    expect(acks.take()).toEqual({ upTo: undefined, single: [3] });
    acks.settled(0, true);
    expect(acks.defer(4)).toBe(false);
    acks.received(5);
    acks.received(6);
    acks.defer(5);
    acks.clear();
    expect(acks.take()).toBeUndefined();
    expect(acks.defer(6)).toBe(false);
  });
});
