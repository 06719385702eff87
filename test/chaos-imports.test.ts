/** `bulwark/chaos` stays light: only Node built-ins and Bulwark's own lower layers; pg loads only on demand. */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('../src/', import.meta.url).pathname;

/** The specifiers of the value (non-type) imports of a module. */
function valueImports(source: string): string[] {
  const specifiers: string[] = [];
  for (const match of source.matchAll(/^import\s+(type\s+)?[^;]*?from\s+'([^']+)';/gms)) {
    if (match[1] === undefined) specifiers.push(match[2] as string);
  }
  for (const match of source.matchAll(/^export\s+(type\s+)?[^;]*?from\s+'([^']+)';/gms)) {
    if (match[1] === undefined) specifiers.push(match[2] as string);
  }
  return specifiers;
}

describe('import weight', () => {
  it('src/chaos imports only node: built-ins and core, policy and chaos modules', async () => {
    const files = (await readdir(join(root, 'chaos'))).filter(
      (f) => f.endsWith('.ts') && !f.endsWith('.test.ts'),
    );
    expect(files).toEqual(expect.arrayContaining(['fs.ts', 'memory-fs.ts', 'race.ts', 'index.ts']));
    for (const file of files) {
      const source = await readFile(join(root, 'chaos', file), 'utf8');
      for (const specifier of valueImports(source)) {
        expect(
          specifier.startsWith('node:') || /^\.\.\/(core|policy)\/|^\.\//.test(specifier),
          `${file} imports ${specifier}`,
        ).toBe(true);
      }
    }
  });

  it('the db-pool scenario loads pg only with a dynamic import', async () => {
    const source = await readFile(join(root, 'lab', 'scenarios', 'db-pool.ts'), 'utf8');
    expect(valueImports(source).filter((s) => !s.startsWith('.'))).toEqual([]);
    expect(source).toContain("await import('pg')");
  });
});
