/**
 * `bulwark` and `bulwark/policy` never load the monitor: no prom-client, no SQLite, no dashboard code.
 * Checked on the import graph of the sources (what the built package mirrors file for file).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { expect, it } from 'vitest';

const src = resolve(import.meta.dirname, '..', 'src');

function graph(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^'"]*?from\s+'([^']+)'/gm)) {
      const spec = m[1] as string;
      if (spec.startsWith('.')) visit(join(dirname(file), spec.replace(/\.js$/, '.ts')));
      else seen.add(spec);
    }
  };
  visit(join(src, entry));
  return seen;
}

it.each(['index.ts', 'policy/index.ts'])('%s does not pull in the monitor', (entry) => {
  const reached = [...graph(entry)];
  expect(
    reached.filter(
      (f) => f.startsWith(join(src, 'monitor')) || f === 'prom-client' || f === 'better-sqlite3',
    ),
  ).toEqual([]);
  expect(reached.length).toBeGreaterThan(5);
});

it('bulwark/monitor does load prom-client (the check can see it)', () => {
  expect(graph('monitor/index.ts').has('prom-client')).toBe(true);
});
