import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigurationError } from '../../src/errors.js';
import { afterMs, afterSeconds, checkSeconds, longClock, MAX_TIMER_MS } from '../../src/seconds.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('checkSeconds', () => {
  it('takes undefined, 0, fractions and Infinity; refuses the rest with a ConfigurationError naming the option', () => {
    for (const value of [undefined, 0, 0.25, 5, Infinity]) expect(() => checkSeconds(value, 'timeout')).not.toThrow();
    for (const value of [Number.NaN, -1, -Infinity, '5', null, {}]) {
      expect(() => checkSeconds(value, 'timeout')).toThrow(ConfigurationError);
      expect(() => checkSeconds(value, 'timeout')).toThrow(/^timeout must be a number of seconds >= 0/);
    }
    expect(() => checkSeconds('5', 'timeout')).toThrow(/got string "5"/);
  });

  it('refuses Infinity when told finite, and throws the error it is given', () => {
    expect(() => checkSeconds(Infinity, 'heartbeat', { finite: true })).toThrow(ConfigurationError);
    expect(() => checkSeconds(-1, 'intervalMax', { error: (m) => new RangeError(m) })).toThrow(RangeError);
  });
});

describe('afterMs / afterSeconds', () => {
  it('fires a delay past the timer limit when it is due, not after 1 ms', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    afterSeconds(40 * 24 * 3600, fn);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(40 * 24 * 3600 * 1000 - MAX_TIMER_MS - 1);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('Infinity starts no timer and never fires', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    afterMs(Infinity, fn);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10 * MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
  });

  it('cancel() stops a long timer between its steps, and leaves no timer', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    const timer = afterMs(3 * MAX_TIMER_MS, fn);
    vi.advanceTimersByTime(MAX_TIMER_MS + 5);
    expect(vi.getTimerCount()).toBe(1);
    timer.cancel();
    timer.cancel();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(5 * MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
  });

  it('0 (and NaN or a negative delay) fires on the next turn', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    afterMs(0, fn);
    afterMs(Number.NaN, fn);
    afterMs(-5, fn);
    vi.advanceTimersByTime(0);
    expect(fn).toHaveBeenCalledTimes(3);
  });

  it('is a clock XState can use: setTimeout/clearTimeout', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    const id = longClock.setTimeout(fn, 2 * MAX_TIMER_MS);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    longClock.clearTimeout(id);
    vi.advanceTimersByTime(2 * MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });
});
