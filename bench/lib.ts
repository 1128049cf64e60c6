/**
 * Small helpers shared by the benchmarks: medians over rounds, a ratio table, GC'd heap.
 * Benchmarks print numbers; they assert nothing (timed assertions do not belong in tests).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export const run = promisify(execFile);
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The number after `--name` on the command line, or `fallback` when absent or not a number. */
export function numberArg(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : NaN;
  return Number.isFinite(value) ? value : fallback;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The `q` quantile (0..1) of `values`, nearest rank. */
export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

export interface Row {
  name: string;
  value: number;
}

/**
 * Prints a markdown table of `rows`, with each row's ratio to `baseline` (higher is better
 * when `higherIsBetter`, else the ratio is baseline / value so that > 1 still means better).
 */
export function table(title: string, unit: string, rows: Row[], baseline: string, higherIsBetter: boolean): string {
  const base = rows.find((r) => r.name === baseline)?.value;
  const lines = [`### ${title}`, '', `| client | ${unit} | vs ${baseline} |`, '|---|---:|---:|'];
  for (const row of rows) {
    const ratio = base === undefined || row.value === 0 ? NaN : higherIsBetter ? row.value / base : base / row.value;
    const shown = unit.includes('/s') ? Math.round(row.value).toLocaleString('en-US') : row.value < 10 ? row.value.toFixed(2) : row.value.toFixed(0);
    lines.push(`| ${row.name} | ${shown} | ${Number.isNaN(ratio) ? '-' : `${ratio.toFixed(2)}x`} |`);
  }
  const text = lines.join('\n');
  console.log(`\n${text}\n`);
  return text;
}

/** A JSON body of about `bytes` bytes. */
export function payload(bytes: number, seq: number): { seq: number; pad: string } {
  const base = JSON.stringify({ seq, pad: '' }).length;
  return { seq, pad: 'x'.repeat(Math.max(0, bytes - base)) };
}
