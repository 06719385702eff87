import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExperimentFileError, loadExperimentFile, parseExperimentFile } from './file.js';

const valid = `
title: Redis slows down
description: the service keeps answering
steady-state-hypothesis:
  title: healthy
  probes:
    - type: probe
      name: health
      provider: { type: http, url: "http://127.0.0.1:8080/health", timeout: 1s }
      tolerance: { status: [200, 204], maxLatency: 500ms }
method:
  - type: action
    name: slow redis
    provider:
      type: toxiproxy
      action: addToxic
      proxy: redis
      toxic: { name: slow, type: latency, attributes: { latency: 800 } }
    pauses: { after: 1s }
  - type: wait
    duration: 2s
  - type: probe
    name: circuit
    provider: { type: metric, url: "http://127.0.0.1:8080/metrics", metric: bulwark_circuit_state, labels: { state: open } }
    tolerance: [0, 1]
rollbacks:
  - type: action
    name: remove toxic
    provider: { type: toxiproxy, action: removeToxic, proxy: redis, toxic: { name: slow } }
load:
  url: "http://127.0.0.1:8080/work"
  rate: 20
  warmup: 1s
abort:
  - errorRate: { above: 0.5, window: 2s }
`;

function problems(text: string): string[] {
  try {
    parseExperimentFile(text, 'exp.yaml');
  } catch (error) {
    if (error instanceof ExperimentFileError) return [...error.problems];
    throw error;
  }
  throw new Error('expected problems');
}

describe('experiment files', () => {
  it('parses a valid file into an experiment, durations in ms, modules resolved from its directory', () => {
    const experiment = parseExperimentFile(valid, '/srv/exp/redis.yaml');
    expect(experiment.title).toBe('Redis slows down');
    expect(experiment.baseDir).toBe('/srv/exp');
    expect(experiment.steadyStateHypothesis?.probes[0]).toMatchObject({
      name: 'health',
      provider: { type: 'http', timeout: 1000 },
      tolerance: { status: [200, 204], maxLatency: 500 },
    });
    expect(experiment.method.map((a) => a.type)).toEqual(['action', 'wait', 'probe']);
    expect(experiment.method[1]).toEqual({ type: 'wait', duration: 2000 });
    expect(experiment.load).toMatchObject({ rate: 20, warmup: 1000 });
    expect(experiment.abort).toEqual([{ errorRate: { above: 0.5, window: 2000 } }]);
  });

  it('reports every problem once, with line, column and path', () => {
    const bad = `
title: broken
steady-state-hypothesis:
  probes:
    - type: probe
      name: health
      provider: { type: htp, url: "http://x" }
      tolerance: { staus: 200 }
method:
  - type: action
    name: add
    provider: { type: toxiproxy, action: addToxic }
  - type: wiat
  - type: action
    name: add
    provider: { type: process, command: [] }
abort:
  - errorRate: { above: 2 }
`;
    expect(problems(bad)).toEqual([
      'exp.yaml:7:25: steady-state-hypothesis.probes[0].provider.type: expected one of "http", "process", "metric", "toxiproxy", "module"',
      'exp.yaml:8:20: steady-state-hypothesis.probes[0].tolerance.staus: unknown key (did you mean "status"?)',
      'exp.yaml:13:11: method[1].type: expected one of "probe", "action", "wait"',
      'exp.yaml:16:41: method[2].provider.command: expected the program and its arguments',
      'exp.yaml:18:25: abort[0].errorRate.above: must be a probability in [0, 1]',
    ]);
  });

  it('checks what the schema cannot: toxiproxy needs, duplicate names, abort without load', () => {
    const text = `
title: semantics
method:
  - type: action
    name: add
    provider: { type: toxiproxy, action: addToxic }
  - type: action
    name: add
    provider: { type: toxiproxy, action: removeToxic, proxy: redis }
abort:
  - errorRate: { above: 0.5 }
`;
    expect(problems(text)).toEqual([
      'exp.yaml:6:15: method[0].provider: addToxic needs "proxy"',
      'exp.yaml:6:15: method[0].provider: addToxic needs "toxic.type" (latency, bandwidth, timeout, reset_peer, …)',
      'exp.yaml:8:11: method[1].name: "add" is already the name of method[0]',
      'exp.yaml:9:15: method[1].provider: removeToxic needs "toxic.name"',
      'exp.yaml:11:16: abort[0].errorRate: an error-rate condition needs a "load" section to measure',
    ]);
  });

  it('reports syntax errors and a file that is not a map', () => {
    expect(problems('title: [unclosed')[0]).toMatch(/^exp\.yaml:1:\d+: /);
    expect(problems('- just\n- a list\n')).toEqual([
      'exp.yaml:1:1: expected a map with title, steady-state-hypothesis, method and rollbacks; got a list',
    ]);
  });

  it('a missing file is one unreadable problem', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bulwark-exp-'));
    await expect(loadExperimentFile(join(dir, 'none.yaml'))).rejects.toMatchObject({
      unreadable: true,
      problems: [`cannot read ${join(dir, 'none.yaml')}: no such file`],
    });
    await writeFile(join(dir, 'ok.yaml'), valid);
    await expect(loadExperimentFile(join(dir, 'ok.yaml'))).resolves.toMatchObject({
      title: 'Redis slows down',
    });
  });

  it('fills environment variables, with defaults, and reports unset ones', () => {
    const text = `
title: \${TITLE:-untitled}
method:
  - type: probe
    name: health
    provider: { type: http, url: "\${SERVICE_URL}/health" }
  - type: probe
    name: literal
    provider: { type: process, command: [echo, "$\${HOME}"] }
`;
    const experiment = parseExperimentFile(text, 'exp.yaml', { SERVICE_URL: 'http://127.0.0.1:9999' });
    expect(experiment.title).toBe('untitled');
    expect(experiment.method[0]).toMatchObject({ provider: { url: 'http://127.0.0.1:9999/health' } });
    expect(experiment.method[1]).toMatchObject({ provider: { command: ['echo', `\${HOME}`] } });
    try {
      parseExperimentFile(text, 'exp.yaml', {});
      expect.unreachable();
    } catch (error) {
      expect((error as ExperimentFileError).problems).toEqual([
        `exp.yaml:6:34: method[0].provider.url: environment variable SERVICE_URL is not set (write \${SERVICE_URL:-default} to give a default)`,
      ]);
    }
  });
});
