import { describe, expect, it } from 'vitest';
import { SystemClock, VirtualClock } from './clock.js';
import { createRuntime, systemRuntime, virtualRuntime } from './runtime.js';

describe('runtime', () => {
  it('virtualRuntime is reproducible', () => {
    const a = virtualRuntime(5);
    const b = virtualRuntime(5);
    expect(a.clock).toBeInstanceOf(VirtualClock);
    expect(a.random.next()).toBe(b.random.next());
    expect(virtualRuntime(5, { start: 100 }).clock.now()).toBe(100);
  });

  it('createRuntime defaults to real time and a fresh seed', () => {
    const rt = createRuntime();
    expect(rt.clock).toBeInstanceOf(SystemClock);
    expect(rt.random.seed).toMatch(/^[0-9a-f]{16}$/);
    expect(createRuntime({ seed: 'x' }).random.seed).toBe('x');
  });

  it('systemRuntime is one shared instance', () => {
    expect(systemRuntime()).toBe(systemRuntime());
  });
});
