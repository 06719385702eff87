import { describe, expect, it } from 'vitest';
import { createRuntime } from '../../core/runtime.js';
import { applyProxyConfig, ProxyConfigError, parseProxyConfig } from './config.js';
import { ProxyServer } from './server.js';
import { echoServer } from './testing.js';

function problems(text: string): string[] {
  try {
    parseProxyConfig(text, 'p.yaml');
  } catch (error) {
    if (error instanceof ProxyConfigError) return [...error.problems];
    throw error;
  }
  return [];
}

describe('proxy config files', () => {
  it('reads the YAML form with a seed, HTTP mode and toxics', () => {
    const config = parseProxyConfig(
      `seed: s1
proxies:
  - name: api
    mode: http
    upstream: 127.0.0.1:8080
    toxics:
      - { type: http_status, attributes: { status: 429, retry_after: 1 }, match: { path: /v1/* } }
`,
      'p.yaml',
    );
    expect(config.seed).toBe('s1');
    expect(config.proxies[0]).toMatchObject({ name: 'api', mode: 'http', toxics: [{ type: 'http_status' }] });
  });

  it('reports every problem with its line, column and path', () => {
    expect(
      problems(`proxies:
  - name: a
    upstream: 127.0.0.1:1
    bogus: 1
    toxics:
      - { type: latency, match: { path: /x } }
      - { type: http_status }
  - name: b
    mode: http
    upstream: 127.0.0.1:1
    toxics:
      - { type: slicer, attributes: { average_size: 0 } }
      - { type: latency, name: x }
      - { type: latency, name: x, toxicity: 3 }
`),
    ).toEqual([
      'p.yaml:4:5: proxies[0].bogus: unknown key; known keys: name, listen, upstream, enabled, mode, toxics',
      'p.yaml:6:33: proxies[0].toxics[0].match: match applies to HTTP-mode proxies only (mode: http)',
      'p.yaml:7:17: proxies[0].toxics[1].type: "http_status" is not a toxic of TCP proxies; they take latency, bandwidth, timeout, reset_peer, slow_close, limit_data, slicer',
      'p.yaml:12:53: proxies[1].toxics[0].attributes.average_size: attributes.average_size must be >= 1, got 0',
      'p.yaml:14:45: proxies[1].toxics[2].toxicity: must be in [0, 1]',
    ]);
    expect(problems('name: x\n')).toEqual([
      'p.yaml:1:1: proxies: required: expected a list',
      'p.yaml:1:1: name: unknown key; known keys: seed, proxies',
    ]);
    expect(problems('[1, 2')[0]).toMatch(/^p\.yaml:1:\d+: /);
  });

  it('applies a config, and undoes it when a proxy cannot start', async () => {
    const upstream = await echoServer();
    const server = new ProxyServer({ runtime: createRuntime({ seed: 1 }), port: 0 });
    try {
      const taken = await server.createProxy({ name: 'taken', upstream: upstream.address });
      const config = parseProxyConfig(
        `- { name: ok, upstream: "${upstream.address}", toxics: [{ type: latency, attributes: { latency: 5 } }] }
- { name: clash, listen: "${taken.listen}", upstream: "${upstream.address}" }
`,
        'p.yaml',
      );
      await expect(applyProxyConfig(server, config)).rejects.toMatchObject({ code: 'PROXY_LISTEN' });
      expect(server.list().map((p) => p.name)).toEqual(['taken']);
    } finally {
      await server.close();
      await upstream.close();
    }
  });
});
