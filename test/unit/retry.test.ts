import { describe, expect, it } from 'vitest';
import { intervalFor, orderHosts } from '../../src/index.js';
import { retriesExhausted, scheduleOf, sleep } from '../../src/retry.js';

describe('retry policy', () => {
  it("fills kombu's defaults: 2, 4, 6 ... 30 s, forever", () => {
    const schedule = scheduleOf();
    expect(schedule).toEqual({ maxRetries: undefined, intervalStart: 2, intervalStep: 2, intervalMax: 30 });
    expect([0, 1, 2, 13, 14, 100].map((r) => intervalFor(schedule, r))).toEqual([2, 4, 6, 28, 30, 30]);
    expect(retriesExhausted(schedule, 1_000_000)).toBe(false);
  });

  it('caps at intervalMax, never beyond', () => {
    const schedule = scheduleOf({ intervalStart: 1, intervalStep: 3, intervalMax: 5 });
    expect([0, 1, 2, 3].map((r) => intervalFor(schedule, r))).toEqual([1, 4, 5, 5]);
  });

  it('maxRetries 0 means one attempt and no retry', () => {
    const schedule = scheduleOf({ maxRetries: 0 });
    expect(retriesExhausted(schedule, 1)).toBe(true);
    expect(retriesExhausted(scheduleOf({ maxRetries: 2 }), 2)).toBe(false);
    expect(retriesExhausted(scheduleOf({ maxRetries: 2 }), 3)).toBe(true);
  });

  it('refuses nonsense values', () => {
    expect(() => scheduleOf({ intervalStart: -1 })).toThrow(RangeError);
    expect(() => scheduleOf({ maxRetries: 1.5 })).toThrow(RangeError);
    expect(() => scheduleOf({ timeout: Number.NaN })).toThrow(RangeError);
  });

  it('orders brokers round-robin, shuffled, or by a function', () => {
    const hosts = ['a', 'b', 'c', 'd', 'e', 'f'];
    expect(orderHosts(hosts)).toEqual(hosts);
    expect(orderHosts(hosts, 'shuffle').sort()).toEqual(hosts);
    expect(orderHosts(hosts, (h) => [...h].reverse())).toEqual([...hosts].reverse());
    expect(() => orderHosts(hosts, 'nope' as never)).toThrow(/Unknown failoverStrategy/);
    expect(() => orderHosts(hosts, () => [])).toThrow(/no broker/);
  });

  it('sleep() is cancelled by its signal and leaves no timer', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const controller = new AbortController();
    const slept = sleep(60, controller.signal);
    controller.abort(new Error('stop'));
    await expect(slept).rejects.toThrow('stop');
    expect(timers()).toBe(before);
  });
});
