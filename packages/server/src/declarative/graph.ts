// The shape of a declared workflow that both the load-time checks and the compiler need: which
// fields of each step are templates, which steps a step waits for (its `needs:` and the steps its
// templates read), and the cycles among them.
import type { StepKind } from './types.ts';

/** The fields of each kind whose strings are templates (walked into maps and lists). */
export const TEMPLATED: Readonly<Record<StepKind, readonly string[]>> = {
  http: ['url', 'headers', 'body'],
  extract: ['html', 'url'],
  'file.write': ['path', 'content'],
  'file.delete': ['path'],
  transform: ['value'],
  delay: [],
  'wait-event': [],
};

/** The fields `run.` may name in a template. */
export const RUN_FIELDS = ['id', 'workflow', 'version'] as const;

/** `a → b → a` for the first cycle found among `edges` (step → the steps it waits for), or undefined. */
export function findCycle(edges: ReadonlyMap<string, ReadonlySet<string>>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    const seen = state.get(name);
    if (seen === 'done') return undefined;
    if (seen === 'visiting') return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, 'visiting');
    stack.push(name);
    for (const next of edges.get(name) ?? []) {
      if (!edges.has(next)) continue;
      const cycle = visit(next);
      if (cycle !== undefined) return cycle;
    }
    stack.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const name of edges.keys()) {
    const cycle = visit(name);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}
