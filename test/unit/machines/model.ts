/**
 * Model-based testing helpers: the paths to replay for a machine, and the transitions they
 * take, so that a test can fail when a transition is added without being covered.
 *
 * Paths = every simple path (xstate/graph TestModel) + (shortest path to a state + one edge)
 * for every edge of the adjacency map, so self-loops are replayed too.
 */
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { TestModel } from 'xstate/graph';

export type Ev = { type: string; [key: string]: unknown };
export type Step = { event: Ev; state: { value: unknown; context: unknown } };
export type Path = { steps: Step[] };

/** Every transition `machine` defines, named "state id / event / candidate index". */
export function definedTransitions(machine: AnyStateMachine): Map<unknown, string> {
  const all = new Map<unknown, string>();
  const visit = (node: AnyStateNode): void => {
    for (const [eventType, candidates] of node.transitions) {
      candidates.forEach((t, i) => all.set(t, `${node.id} / ${eventType} / #${i}`));
    }
    for (const child of Object.values(node.states)) visit(child);
  };
  visit(machine.root);
  return all;
}

export function plan(
  machine: AnyStateMachine,
  options: { events: Ev[]; input: unknown; serializeState: (snapshot: never) => string },
): { paths: Path[]; taken: Set<unknown> } {
  const key = options.serializeState;
  const model = new TestModel(machine, {
    events: options.events as never,
    input: options.input as never,
    serializeState: key as never,
    // A finished actor takes no event (the pure transition function would still compute one).
    filterEvents: (snapshot: { status: string }) => snapshot.status !== 'done',
  } as never);
  const simple = model.getSimplePaths() as unknown as Path[];
  // Shortest path to every vertex by breadth-first search (getShortestPaths drops prefixes).
  const adjacency = Object.values(model.getAdjacencyMap()) as { state: never; transitions: Record<string, Step> }[];
  const byKey = new Map(adjacency.map((v) => [key(v.state), v]));
  const first = key(adjacency[0]!.state);
  const shortest = new Map<string, Path>([[first, { steps: [] }]]);
  const queue = [first];
  while (queue.length > 0) {
    const at = queue.shift()!;
    for (const { event, state } of Object.values(byKey.get(at)?.transitions ?? {})) {
      const next = key(state as never);
      if (shortest.has(next)) continue;
      shortest.set(next, { steps: [...shortest.get(at)!.steps, { event, state }] });
      queue.push(next);
    }
  }
  const taken = new Set<unknown>();
  const edges: Path[] = [];
  for (const vertex of adjacency) {
    const base = shortest.get(key(vertex.state));
    if (!base) throw new Error(`no path to ${key(vertex.state)}`);
    for (const { event, state } of Object.values(vertex.transitions)) {
      for (const t of machine.getTransitionData(vertex.state, event as never)) taken.add(t);
      edges.push({ steps: [...base.steps, { event, state }] });
    }
  }
  return { paths: [...simple, ...edges], taken };
}
