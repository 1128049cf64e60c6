/**
 * Python kombu, the library kombu-ts ports, as a peer of the AMQP benchmark where it is
 * installed: Debian's python3-kombu under /usr/bin/python3 (not whichever python3 is first on
 * PATH). Each measurement is one run of bench/kombu-peer.py, which times itself with
 * perf_counter (interpreter start-up, connecting and declaring stay outside the clock, as for
 * the Node peers) and prints one JSON line. Absent kombu, the column is skipped with a note.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { run } from './lib.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./kombu-peer.py', import.meta.url));

type Result = Record<string, number | boolean | string | null>;

/**
 * Runs `kombu-peer.py ...args` and resolves with its result line. `onReady` runs when the
 * script prints `{"ready": true}` (the recovery loop is running); the script's exit waits for it.
 * `onLine` sees every other line as it arrives (the last one is the result).
 */
function peer(args: string[], onReady?: () => Promise<unknown>, onLine?: (message: Result) => void): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let result: Result | undefined;
    let ready: Promise<unknown> = Promise.resolve();
    let readyError: unknown;
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const message = JSON.parse(line) as Result;
      if (message.ready !== true) {
        result = message;
        onLine?.(message);
      }
      else if (onReady) ready = onReady().catch((error: unknown) => (readyError = error));
    });
    child.on('error', reject);
    child.on('close', (code) => {
      void ready.then(() => {
        if (readyError !== undefined) reject(readyError);
        else if (code === 0 && (result || onLine)) resolve(result ?? {});
        else reject(new Error(`kombu-peer.py ${args.join(' ')} exited with ${code}: ${stderr.trim()}`));
      });
    });
  });
}

const num = (value: Result[string] | undefined): number => (typeof value === 'number' ? value : NaN);

export interface PythonKombu {
  name: string;
  version: string;
  publish(queue: string): Promise<number>;
  consume(queue: string): Promise<number>;
  /** Recovery times in ms from the client seeing the close (NaN if not recovered in 15 s). */
  recover(queue: string, forceClose: () => Promise<unknown>): Promise<{ publish: number; deliver: number }>;
  memory(connections: number): Promise<{ tracemalloc: number; rss: number }>;
  /**
   * A Consumer of `queues` (each bound to `exchange` under its own name) on `url`; `onReady` is
   * called once it consumes (break its connection there), `onDelivered` with each queue's first
   * delivery after the break. Resolves when every queue has delivered (or after 30 s).
   */
  topology(url: string, exchange: string, queues: string[], onReady: () => Promise<unknown>, onDelivered: (queue: string) => void): Promise<void>;
}

/** The Python peer for `messages` per round, or undefined (with a printed note) without kombu. */
export async function pythonKombu(messages: number): Promise<PythonKombu | undefined> {
  const version = await run(PYTHON, ['-c', 'import kombu; print(kombu.__version__)']).then(
    ({ stdout }) => stdout.trim(),
    () => undefined,
  );
  if (version === undefined) {
    console.log(`\nkombu (Python): skipped, \`${PYTHON} -c 'import kombu'\` fails (Debian: apt install python3-kombu).`);
    return undefined;
  }
  console.log(
    `\nkombu (Python ${version}, ${PYTHON}, py-amqp): its confirmed publish waits for each message's confirm` +
      ' (confirm_publish=True, the way kombu confirms), so its window is 1, not 1000.',
  );
  return {
    name: 'kombu (Python)',
    version,
    publish: async (queue) => num((await peer(['publish', queue, String(messages)])).rate),
    consume: async (queue) => num((await peer(['consume', queue, String(messages)])).rate),
    async recover(queue, forceClose) {
      const result = await peer(['recovery', queue], forceClose);
      return { publish: num(result.publish), deliver: num(result.deliver) };
    },
    async topology(url, exchange, queues, onReady, onDelivered) {
      await peer(['topology', url, exchange, ...queues], onReady, (line) => {
        if (typeof line.delivered === 'string') onDelivered(line.delivered);
      });
    },
    async memory(connections) {
      const result = await peer(['memory', String(connections)]);
      return { tracemalloc: num(result.tracemalloc), rss: num(result.rss) };
    },
  };
}

/** Python's memory per idle connection + channel, printed apart: it is not V8 heap. */
export async function pythonMemoryTable(py: PythonKombu, connections: number): Promise<string> {
  const { tracemalloc, rss } = await py.memory(connections);
  const text = [
    `### kombu (Python ${py.version}) memory per idle connection + channel (${connections} of each)`,
    '',
    'Python allocations, a different measure from the V8 heap above: not comparable, no ratio.',
    '',
    '| measure | KiB |',
    '|---|---:|',
    `| tracemalloc (live Python allocations after gc.collect) | ${tracemalloc.toFixed(0)} |`,
    `| RSS delta of the whole process | ${rss.toFixed(0)} |`,
  ].join('\n');
  console.log(`\n${text}\n`);
  return text;
}
