import { describe, expect, it } from 'vitest';
import { Random } from '../../core/random.js';
import { virtualRuntime } from '../../core/runtime.js';
import { createStage, parseToxic, type Stage, type StageHost, toxicJson } from './toxics.js';

/** A stage on a virtual clock writing into an array, with what it asked of the connection. */
function harness(body: Record<string, unknown>, seed = 1) {
  const rt = virtualRuntime(seed);
  const out: { at: number; data: string }[] = [];
  const actions: string[] = [];
  let activations = 0;
  let held = 0;
  const host: StageHost = {
    clock: rt.clock,
    close: (reason) => actions.push(`close:${reason}`),
    reset: (reason) => actions.push(`reset:${reason}`),
    held: (delta) => {
      held += delta;
    },
    activated: () => {
      activations++;
    },
  };
  const sink = {
    write: (chunk: Buffer) => out.push({ at: rt.clock.now(), data: chunk.toString() }),
    end: () => out.push({ at: rt.clock.now(), data: '<end>' }),
  };
  const stage: Stage = createStage(parseToxic(body), host, new Random(seed), sink);
  stage.start();
  return { rt, out, actions, stage, activations: () => activations, held: () => held };
}

describe('toxic stages (virtual clock)', () => {
  it('latency delays each chunk, keeps order under jitter, and holds no bytes once released', async () => {
    const h = harness({ type: 'latency', attributes: { latency: 100, jitter: 50 } });
    for (let i = 0; i < 20; i++) h.stage.write(Buffer.from(String(i % 10)));
    h.stage.end();
    expect(h.held()).toBe(20);
    await h.rt.clock.runUntilIdle();
    expect(h.out.map((o) => o.data).join('')).toBe('01234567890123456789<end>');
    for (const o of h.out) expect(o.at).toBeGreaterThanOrEqual(50);
    const times = h.out.map((o) => o.at);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(h.held()).toBe(0);
  });

  it('slicer cuts chunks into average ± variation pieces, delay µs apart', async () => {
    const h = harness({ type: 'slicer', attributes: { average_size: 10, size_variation: 4, delay: 5000 } });
    const text = 'abcdefghijklmnopqrstuvwxyz'.repeat(8);
    h.stage.write(Buffer.from(text));
    await h.rt.clock.runUntilIdle();
    expect(h.out.map((o) => o.data).join('')).toBe(text);
    expect(h.out.length).toBeGreaterThan(10);
    for (const o of h.out) expect(o.data.length).toBeLessThanOrEqual(14);
    expect(h.out.map((o) => o.at)).toEqual(h.out.map((_, i) => i * 5));
  });

  it('bandwidth releases bytes at the rate', async () => {
    const h = harness({ type: 'bandwidth', attributes: { rate: 10 } });
    h.stage.write(Buffer.alloc(10 * 1024));
    await h.rt.clock.runUntilIdle();
    expect(h.out.at(-1)?.at).toBe(1000);
    expect(h.out.length).toBe(10);
  });

  it('timeout swallows data and closes after the timeout; reset_peer resets after the first data', async () => {
    const t = harness({ type: 'timeout', attributes: { timeout: 300 } });
    t.stage.write(Buffer.from('lost'));
    await t.rt.clock.runUntilIdle();
    expect(t.out).toEqual([]);
    expect(t.actions).toEqual(['close:timeout']);
    expect(t.rt.clock.now()).toBe(300);
    const r = harness({ type: 'reset_peer', attributes: { timeout: 40 } });
    await r.rt.clock.advance(1000);
    expect(r.actions).toEqual([]);
    r.stage.write(Buffer.from('x'));
    await r.rt.clock.runUntilIdle();
    expect(r.actions).toEqual(['reset:reset_peer']);
    expect(r.rt.clock.now()).toBe(1040);
  });

  it('limit_data passes exactly the limit, then closes; slow_close delays the end', async () => {
    const l = harness({ type: 'limit_data', attributes: { bytes: 5 } });
    l.stage.write(Buffer.from('abc'));
    l.stage.write(Buffer.from('defg'));
    l.stage.write(Buffer.from('h'));
    expect(l.out.map((o) => o.data)).toEqual(['abc', 'de']);
    expect(l.actions).toEqual(['close:limit_data']);
    const s = harness({ type: 'slow_close', attributes: { delay: 250 } });
    s.stage.write(Buffer.from('x'));
    s.stage.end();
    await s.rt.clock.runUntilIdle();
    expect(s.out).toEqual([
      { at: 0, data: 'x' },
      { at: 250, data: '<end>' },
    ]);
  });

  it('flush releases held data at once, in order', () => {
    const h = harness({ type: 'latency', attributes: { latency: 10_000 } });
    h.stage.write(Buffer.from('a'));
    h.stage.write(Buffer.from('b'));
    h.stage.flush();
    expect(h.out.map((o) => o.data)).toEqual(['a', 'b']);
    expect(h.rt.clock.pendingTimers).toBe(0);
  });

  it('toxicity: per_connection draws once, per_request draws per chunk, reproducibly', async () => {
    const perConnection = [1, 2, 3, 4, 5, 6, 7, 8].map((seed) =>
      harness({ type: 'latency', toxicity: 0.5 }, seed).activations(),
    );
    expect(perConnection.every((n) => n === 0 || n === 1)).toBe(true);
    expect(new Set(perConnection).size).toBe(2);
    const decisions = (seed: number) => {
      const h = harness(
        { type: 'latency', toxicity: 0.5, toxicity_mode: 'per_request', attributes: { latency: 1 } },
        seed,
      );
      const fired: number[] = [];
      for (let i = 0; i < 32; i++) {
        const before = h.activations();
        h.stage.write(Buffer.from('x'));
        if (h.activations() > before) fired.push(i);
      }
      return fired;
    };
    expect(decisions(9)).toEqual(decisions(9));
    expect(decisions(9)).not.toEqual(decisions(10));
    expect(decisions(9).length).toBeGreaterThan(5);
    expect(decisions(9).length).toBeLessThan(27);
  });

  it('parses Toxiproxy JSON with its defaults and rejects bad values', () => {
    expect(toxicJson(parseToxic({ type: 'latency' }))).toEqual({
      attributes: { latency: 0, jitter: 0 },
      name: 'latency_downstream',
      type: 'latency',
      stream: 'downstream',
      toxicity: 1,
    });
    const updated = parseToxic(
      { attributes: { jitter: 5 }, type: 'ignored' },
      parseToxic({ type: 'latency', attributes: { latency: 9 } }),
    );
    expect(updated.attributes).toEqual({ latency: 9, jitter: 5 });
    expect(() => parseToxic({ type: 'latency', attributes: { latency: 1.5 } })).toThrow(
      'attributes.latency must be an integer >= 0, got 1.5',
    );
    expect(() => parseToxic({ type: 'latency', toxicity: 2 })).toThrow(
      'toxicity must be a number in [0, 1], got 2',
    );
    expect(() => parseToxic({ type: 'slicer', attributes: { average_size: 4, size_variation: 4 } })).toThrow(
      /size_variation must be less than average_size/,
    );
    expect(() => parseToxic({ type: 'latency', toxicity_mode: 'sometimes' })).toThrow(/toxicity_mode/);
    expect(() => parseToxic({ type: 'http_status', match: { path: 'x' } })).toThrow(
      'match.path must start with "/", got "x"',
    );
  });
});
