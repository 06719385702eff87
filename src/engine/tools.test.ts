import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { UnknownToolError } from './errors.js';
import { checkParams, describeCall, estimateMs, isIdempotent, type Tool, ToolRegistry } from './tools.js';

type Greet = { who: string; loud: boolean };

const greet = {
  name: 'greet.person',
  params: z.object({ who: z.string(), loud: z.boolean().default(false) }).strict(),
  run: ({ who }: Greet) => ({ text: `hello ${who}` }),
  idempotent: ({ loud }: Greet) => !loud,
  estimate: () => '2s',
};

describe('ToolRegistry', () => {
  it('registers tools, resolves them, and suggests the closest name for an unknown one', () => {
    const registry = new ToolRegistry().registerTool(greet);
    expect(registry.names()).toEqual(['greet.person']);
    expect(registry.resolve('greet.person')).toBe(greet);
    const unknown = registry.resolve('greet.persn');
    expect(unknown).toBeInstanceOf(UnknownToolError);
    expect((unknown as Error).message).toBe('unknown tool "greet.persn" — did you mean "greet.person"?');
    expect((registry.resolve('zzz') as Error).message).toBe('unknown tool "zzz"');
  });

  it('rejects bad definitions, naming the option', () => {
    const registry = new ToolRegistry();
    expect(() => registry.registerTool({ ...greet, name: 'Bad Name' })).toThrow(
      'registerTool: option "name" must be a dotted name of letters and digits such as "fs.write", got "Bad Name"',
    );
    expect(() => registry.registerTool({ ...greet, params: {} as never })).toThrow(
      'option "params" must be a zod schema',
    );
    expect(() => registry.registerTool({ ...greet, run: 1 as never })).toThrow(
      'option "run" must be a function, got 1',
    );
    expect(() => registry.registerTool({ ...greet, compensate: 'x' as never })).toThrow(
      'option "compensate" must be a function',
    );
    expect(() => registry.registerTool({ ...greet, idempotent: 'yes' as never })).toThrow(
      'option "idempotent" must be a boolean or a function of the params',
    );
  });

  it('validates params with the schema, and reads idempotence, description and estimate', () => {
    const tool = greet as unknown as Tool;
    expect(checkParams(tool, { who: 'ada' })).toEqual({ ok: true, value: { who: 'ada', loud: false } });
    const bad = checkParams(tool, { who: 1, extra: true });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error.message).toBe(
      'greet.person: params.who: Expected string, received number; params: unknown key extra',
    );
    expect(isIdempotent(tool, { who: 'a', loud: false })).toBe(true);
    expect(isIdempotent(tool, { who: 'a', loud: true })).toBe(false);
    expect(describeCall(tool, { who: 'a' })).toBe('greet.person {"who":"a"}');
    expect(estimateMs(tool, {})).toBe(2000);
  });
});
