import { afterEach, describe, expect, it, vi } from 'vitest';
import { intervalFor, orderHosts } from '../../src/index.js';
import { retriesExhausted, scheduleOf, sleep } from '../../src/retry.js';
import { ConfigurationError } from '../../src/errors.js';

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
    expect(() => scheduleOf({ intervalStart: -1 })).toThrow(ConfigurationError);
    expect(() => scheduleOf({ maxRetries: 1.5 })).toThrow(ConfigurationError);
    expect(() => scheduleOf({ timeout: Number.NaN })).toThrow(ConfigurationError);
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

describe('durations in retry policies and sleep() (seconds)', () => {
  /** Past Node's timer limit (2^31 - 1 ms, ~24.8 days): Node would fire such a timer after 1 ms. */
  const MONTH = 30 * 24 * 3600;
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a policy may say Infinity: no cap (intervalMax), no time limit (timeout), sleep forever (intervals)', () => {
    const schedule = scheduleOf({ intervalStart: 1, intervalStep: 2, intervalMax: Infinity, timeout: Infinity });
    expect([0, 1, 10].map((r) => intervalFor(schedule, r))).toEqual([1, 3, 21]);
    // A step of Infinity: the first sleep is still intervalStart (0 * Infinity is no NaN).
    const stepless = scheduleOf({ intervalStart: 1, intervalStep: Infinity, intervalMax: 5 });
    expect([0, 1, 2].map((r) => intervalFor(stepless, r))).toEqual([1, 5, 5]);
    expect(intervalFor(scheduleOf({ intervalStart: Infinity }), 0)).toBe(30);
    expect(intervalFor(scheduleOf({ intervalStart: Infinity, intervalMax: Infinity }), 0)).toBe(Infinity);
  });

  it('refuses NaN, negative and non-number durations, naming the option', () => {
    for (const name of ['intervalStart', 'intervalStep', 'intervalMax', 'timeout'] as const) {
      for (const value of [Number.NaN, -1, -Infinity, '1' as unknown as number]) {
        expect(() => scheduleOf({ [name]: value })).toThrow(ConfigurationError);
        expect(() => scheduleOf({ [name]: value })).toThrow(new RegExp(name));
      }
    }
  });

  it('sleep(Infinity) sleeps until aborted, with no timer', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const controller = new AbortController();
    let woke = false;
    const slept = sleep(Infinity, controller.signal).then(() => { woke = true; });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    expect(woke).toBe(false);
    expect(timers()).toBe(before);
    controller.abort(new Error('stop'));
    await expect(slept).rejects.toThrow('stop');
  });

  it('sleep() past the timer limit sleeps that long, not 1 ms', async () => {
    vi.useFakeTimers();
    let woke = false;
    const slept = sleep(MONTH).then(() => { woke = true; });
    await vi.advanceTimersByTimeAsync(2 ** 31);
    expect(woke).toBe(false);
    await vi.advanceTimersByTimeAsync(MONTH * 1000 - 2 ** 31 - 1);
    expect(woke).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(woke).toBe(true);
    await slept;
    expect(vi.getTimerCount()).toBe(0);
  });

  it('sleep() refuses NaN and negative seconds', async () => {
    await expect(sleep(Number.NaN)).rejects.toThrow(ConfigurationError);
    await expect(sleep(-1)).rejects.toThrow(/seconds/);
  });
});
