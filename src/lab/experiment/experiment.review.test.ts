import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createRuntime } from '../../core/runtime.js';
import { ExperimentFileError, parseExperimentFile } from './file.js';
import { metricValue, runProvider } from './providers.js';
import { type ActivityRun, runExperiment } from './run.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A port nothing listens on: bind a server on port 0, then close it. */
async function closedPort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ExperimentFileError) return [...error.problems];
    throw error;
  }
  return [];
}

const minimal = (extra: string) => `
title: t
method:
  - type: wait
    duration: 1ms
${extra}`;

describe('review: experiment file interpolation', () => {
  it('passing, pins an empty default and a $$-escaped literal with X unset', () => {
    const e = parseExperimentFile(
      `title: "a\${X:-}b $\${X}"\nmethod:\n  - { type: wait, duration: 1ms }\n`,
      'e.yaml',
      {},
    );
    expect(e.title).toBe(`ab \${X}`);
  });

  it('a variable set to the empty string is not reported as "not set"', () => {
    // `${X}` with X="" is set (shell gives ""); the loader reports it as unset, which misleads the user.
    const problems = problemsOf(() =>
      parseExperimentFile(`title: "v\${X}"\nmethod:\n  - { type: wait, duration: 1ms }\n`, 'e.yaml', {
        X: '',
      }),
    );
    expect(problems.join('\n')).not.toMatch(/X is not set/);
  });

  it('a nested default does not silently leave the literal inner variable', () => {
    let title: string | undefined;
    const problems = problemsOf(() => {
      title = parseExperimentFile(
        `title: "\${A:-\${B}}"\nmethod:\n  - { type: wait, duration: 1ms }\n`,
        'e.yaml',
        { B: 'bee' },
      ).title;
    });
    // Either B is used, or the file is rejected; never the literal text "${B}".
    if (problems.length === 0) expect(title).toBe('bee');
  });
});

describe('review: experiment file validation', () => {
  it('an invalid "matches" regular expression is a file error, not a run-time probe failure', () => {
    const problems = problemsOf(() =>
      parseExperimentFile(
        minimal(`steady-state-hypothesis:
  probes:
    - type: probe
      name: p
      provider: { type: http, url: "http://127.0.0.1:1/" }
      tolerance: { matches: "(unclosed" }
`),
        'e.yaml',
        {},
      ),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /^e\.yaml:\d+:\d+: steady-state-hypothesis\.probes\[0\]\.tolerance\.matches: /,
    );
  });

  it('names are unique across the file, abort probes included (README: "Names are unique across the file")', () => {
    const problems = problemsOf(() =>
      parseExperimentFile(
        `title: t
method:
  - { type: probe, name: health, provider: { type: http, url: "http://127.0.0.1:1/" } }
abort:
  - probe: { type: probe, name: health, provider: { type: http, url: "http://127.0.0.1:1/" }, tolerance: 200 }
`,
        'e.yaml',
        {},
      ),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/abort\[0\]\.probe\.name: "health" is already the name of method\[0\]/);
  });

  it('an empty tolerance map {} (holds for anything) is rejected', () => {
    const problems = problemsOf(() =>
      parseExperimentFile(
        minimal(`steady-state-hypothesis:
  probes:
    - { type: probe, name: p, provider: { type: http, url: "http://127.0.0.1:1/" }, tolerance: {} }
`),
        'e.yaml',
        {},
      ),
    );
    expect(problems).toHaveLength(1);
  });

  it('a range tolerance [min, max] with min > max (never holds) is rejected', () => {
    const problems = problemsOf(() =>
      parseExperimentFile(
        minimal(`steady-state-hypothesis:
  probes:
    - { type: probe, name: p, provider: { type: metric, url: "http://127.0.0.1:1/", metric: up }, tolerance: [10, 1] }
`),
        'e.yaml',
        {},
      ),
    );
    expect(problems).toHaveLength(1);
  });
  it('a bad tolerance inside an abort probe is reported (not an error with zero problems)', () => {
    const problems = problemsOf(() =>
      parseExperimentFile(
        `title: t
method:
  - { type: wait, duration: 1ms }
abort:
  - probe: { type: probe, name: p, provider: { type: http, url: "http://x" }, tolerance: { status: "200" } }
`,
        'e.yaml',
        {},
      ),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^e\.yaml:5:\d+: abort\[0\]\.probe\.tolerance/);
  });
  it('an error-rate abort condition that can never fire (rate × window < minRequests) is a file error', () => {
    // rate 2/s over the default 2s window gives at most ~4 requests, below the default minRequests 10:
    // the condition is silently dead, so a broken target is never aborted on.
    const problems = problemsOf(() =>
      parseExperimentFile(
        `title: t
method:
  - { type: wait, duration: 1ms }
load: { url: "http://127.0.0.1:1/", rate: 2 }
abort:
  - errorRate: { above: 0.5 }
`,
        'e.yaml',
        {},
      ),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^e\.yaml:6:\d+: abort\[0\]\.errorRate/);
  });
});

describe('review: providers', () => {
  it('a process killed by SIGTERM reports exit code 143 (128 + 15), not 137', async () => {
    const result = await runProvider(
      { type: 'process', command: ['sh', '-c', 'kill -TERM $$'] },
      createRuntime(),
      new AbortController().signal,
      process.cwd(),
    );
    expect(result.value).toBe(143);
  });
});

describe('review: process provider and metric parsing', () => {
  it('a command that exits at once but leaves a background child holding stdout is not reported as timed out', async () => {
    const result = await runProvider(
      { type: 'process', command: ['sh', '-c', 'sleep 3 & echo started'], timeout: '1s' },
      createRuntime(),
      new AbortController().signal,
      process.cwd(),
    ).catch((error: unknown) => ({ value: `rejected: ${(error as Error).message}` }));
    expect(result.value).toBe(0);
  }, 10_000);

  it('an OpenMetrics exemplar after the sample does not replace the sample value', () => {
    const text = 'http_requests_total{code="200"} 5 # {trace_id="abc"} 1\n';
    expect(metricValue(text, 'http_requests_total', { code: '200' })).toBe(5);
  });
});

describe('review: runExperiment lifecycle', () => {
  it('passing, pins: load against a closed port finishes, counts ECONNREFUSED per phase, leaves nothing open', async () => {
    const port = await closedPort();
    const journal = await runExperiment({
      title: 'closed',
      method: [{ type: 'wait', duration: '100ms' }],
      load: { url: `http://127.0.0.1:${port}/`, rate: 50, warmup: '100ms', cooldown: '100ms', timeout: '1s' },
    });
    expect(journal.status).toBe('completed');
    const phases = journal.load?.phases;
    expect(phases?.before.total).toBeGreaterThan(0);
    expect(phases?.during.total).toBeGreaterThan(0);
    expect(phases?.before.failures).toHaveProperty('ECONNREFUSED');
    expect(journal.load?.requests).toBe(
      (phases?.before.total ?? 0) + (phases?.during.total ?? 0) + (phases?.after.total ?? 0),
    );
  });

  it('an interrupted method still records its background activities in the journal', async () => {
    const order: string[] = [];
    const controller = new AbortController();
    const journal = await runExperiment(
      {
        title: 'background',
        method: [
          {
            type: 'action',
            name: 'slow background',
            background: true,
            provider: {
              type: 'function',
              run: ({ signal }) =>
                new Promise((_, reject) => {
                  // Ctrl-C arrives once the background action is under way.
                  setImmediate(() => controller.abort(new Error('SIGINT')));
                  signal.addEventListener('abort', () => {
                    // Ends a little after the abort, like a real request tearing down.
                    setTimeout(() => {
                      order.push('background ended');
                      reject(new Error('aborted'));
                    }, 30);
                  });
                }),
            },
          },
          { type: 'wait', duration: '20s' },
          { type: 'action', name: 'never', provider: { type: 'function', run: () => 'never' } },
        ],
        rollbacks: [
          {
            type: 'action',
            name: 'undo',
            provider: {
              type: 'function',
              run: async () => {
                order.push('rollback');
                return 'ok';
              },
            },
          },
        ],
      },
      { signal: controller.signal },
    );
    expect(journal.status).toBe('interrupted');
    expect(journal.run.map((a) => a.name)).toContain('slow background');
    expect(order).toContain('rollback');
  }, 10_000);

  it('an abort-condition probe still in flight is not left running after runExperiment resolves', async () => {
    let running = 0;
    let maxAfterReturn = 0;
    let returned = false;
    const late: ActivityRun[] = [];
    const journal = await runExperiment(
      {
        title: 'abort probe in flight',
        method: [{ type: 'wait', duration: '80ms' }],
        abort: [
          {
            probe: {
              type: 'probe',
              name: 'slow watch',
              provider: {
                type: 'function',
                run: () =>
                  new Promise((resolve) => {
                    running++;
                    setTimeout(() => {
                      running--;
                      resolve(1);
                    }, 400);
                  }),
              },
              tolerance: 1,
            },
          },
        ],
        abortInterval: '50ms',
      },
      {
        onActivity: (a) => {
          if (returned) late.push(a);
        },
      },
    );
    returned = true;
    maxAfterReturn = running;
    // Let the stray probe finish (bounded poll) so it cannot leak into other tests.
    for (let i = 0; i < 100 && running > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(journal.status).toBe('completed');
    expect(maxAfterReturn).toBe(0);
    expect(late).toEqual([]);
  }, 10_000);
});

describe('review: providers and load against loopback servers', () => {
  async function server(handler: Parameters<typeof createServer>[1]) {
    const s = createServer(handler);
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    servers.push(s);
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  }

  it("a { status } tolerance checks a toxiproxy probe's HTTP status (its main value), as for http", async () => {
    const api = await server((_req, res) => {
      res.statusCode = 204;
      res.end();
    });
    const journal = await runExperiment({
      title: 'toxiproxy status',
      steadyStateHypothesis: {
        probes: [
          {
            type: 'probe',
            name: 'proxy resets',
            provider: { type: 'toxiproxy', api, action: 'reset' },
            tolerance: { status: 204 },
          },
        ],
      },
      method: [{ type: 'wait', duration: '1ms' }],
    });
    expect(journal.steadyStates.before?.probes[0]?.tolerance).toEqual({ holds: true, reason: '' });
    expect(journal.status).toBe('completed');
  });

  it('a load with a non-string body sends it as JSON with content-type application/json, like the http provider', async () => {
    const types: (string | undefined)[] = [];
    const url = await server((req, res) => {
      types.push(req.headers['content-type']);
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    const journal = await runExperiment({
      title: 'json load',
      method: [{ type: 'wait', duration: '50ms' }],
      load: {
        url,
        method: 'POST',
        body: { a: 1 },
        rate: 40,
        warmup: '50ms',
        cooldown: '10ms',
        maxRequests: 3,
      },
    });
    expect(journal.load?.requests).toBeGreaterThan(0);
    expect(types.length).toBeGreaterThan(0);
    expect(new Set(types)).toEqual(new Set(['application/json']));
  });

  it('an interrupted run does not count the load requests it cancelled itself as target failures', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const url = await server((_req, res) => {
      const t = setTimeout(() => {
        timers.delete(t);
        res.end('slow ok');
      }, 300);
      timers.add(t);
    });
    const controller = new AbortController();
    const journal = await runExperiment(
      {
        title: 'interrupted with load in flight',
        method: [
          { type: 'action', name: 'start', provider: { type: 'function', run: () => 'ok' } },
          { type: 'wait', duration: '20s' },
        ],
        load: { url, rate: 50, warmup: '100ms', cooldown: '100ms', timeout: '5s' },
      },
      {
        signal: controller.signal,
        onActivity: (a) => {
          if (a.name === 'start') controller.abort(new Error('SIGINT'));
        },
      },
    );
    for (const t of timers) clearTimeout(t);
    expect(journal.status).toBe('interrupted');
    const failures = Object.values(journal.load?.phases ?? {}).map((p) => p.failures);
    // Requests Bulwark aborted itself say nothing about the target: they should not lower its success rate.
    expect(failures.filter((f) => 'stopped' in f)).toEqual([]);
  });

  it('a throwing onActivity callback does not skip the rollbacks or leave the load running', async () => {
    let hits = 0;
    const url = await server((_req, res) => {
      hits++;
      res.end('ok');
    });
    const rolledBack: string[] = [];
    const settled = await runExperiment(
      {
        title: 'throwing progress callback',
        method: [{ type: 'action', name: 'poke', provider: { type: 'function', run: () => 'ok' } }],
        rollbacks: [
          ...['undo 1', 'undo 2'].map((name) => ({
            type: 'action' as const,
            name,
            provider: {
              type: 'function' as const,
              run: () => {
                rolledBack.push(name);
                return 'ok';
              },
            },
          })),
        ],
        // maxRequests bounds the leak if the generator is never stopped.
        load: { url, rate: 50, warmup: '50ms', cooldown: '50ms', maxRequests: 40 },
      },
      {
        onActivity: () => {
          throw new Error('progress output failed (EPIPE)');
        },
      },
    ).then(
      () => 'resolved',
      () => 'rejected',
    );
    expect(['resolved', 'rejected']).toContain(settled);
    expect(rolledBack).toEqual(['undo 1', 'undo 2']);
    // The load must have stopped: no new requests arrive afterwards (bounded poll).
    const before = hits;
    for (let i = 0; i < 10 && hits === before; i++) await new Promise((r) => setTimeout(r, 30));
    expect(hits).toBe(before);
  });

  it('the error-rate abort reason prints the threshold as written (7%, not 7.000000000000001%)', async () => {
    const port = await closedPort();
    const journal = await runExperiment({
      title: 'abort threshold',
      method: [{ type: 'wait', duration: '20s' }],
      load: { url: `http://127.0.0.1:${port}/`, rate: 100, warmup: '50ms', cooldown: '10ms' },
      abort: [{ errorRate: { above: 0.07, window: '1s', minRequests: 3 } }],
      abortInterval: '50ms',
    });
    expect(journal.status).toBe('aborted');
    expect(journal.reason).toMatch(/ is above 7%$/);
  });
});
