/**
 * `bulwark proxy`: runs the Toxiproxy-compatible fault proxy until SIGINT or SIGTERM, with the proxies and
 * toxics of `--config` created at start. Exit code 0 after a clean stop, 2 on bad input (flags, a bad
 * config file, an address that cannot be bound), with a one-line message and nothing left running.
 */
import {
  applyProxyConfig,
  loadProxyConfig,
  type ProxyConfig,
  ProxyConfigError,
} from '../chaos/tcp/config.js';
import { ProxyApiError } from '../chaos/tcp/errors.js';
import { DEFAULT_API_PORT, ProxyServer } from '../chaos/tcp/server.js';
import type { Seed } from '../core/random.js';
import { createRuntime, freshSeed } from '../core/runtime.js';
import { type CommandIO, parseFlags, UsageError } from './io.js';

/** What the command waits on; tests replace it. */
export interface ProxyDependencies {
  /** Resolves with the signal's name when the proxy should stop. @defaultValue SIGINT or SIGTERM */
  stopSignal: () => Promise<string>;
  /** The environment (`BULWARK_PROXY_TOKEN`). */
  env: Readonly<Record<string, string | undefined>>;
  /** Called once the API listens (tests read the URL from it). */
  onReady?: (server: ProxyServer) => void;
}

export const defaultProxyDependencies: ProxyDependencies = {
  stopSignal: () =>
    new Promise((resolve) => {
      const stop = (signal: string) => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve(signal);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }),
  env: process.env,
};

const HELP = `Usage: bulwark proxy [--config FILE] [--seed S] [--host H] [--port P] [--token T] [--events]

Runs a TCP fault proxy whose HTTP API is Toxiproxy 2.x's (same endpoints, JSON and errors), so Toxiproxy
clients and scripts drive it unchanged. Toxics: latency, bandwidth, timeout, reset_peer, slow_close,
limit_data, slicer; toxicity per connection (Toxiproxy's way) or per chunk ("toxicity_mode": "per_request").
Runs until SIGINT or SIGTERM, then closes every proxy and connection.

Options:
  --config FILE  YAML or JSON file of proxies (and their toxics) to create at start. Toxiproxy's
                 -config format (a JSON array of proxies) works as is. A bad file exits 2, listing
                 each problem as file:line:column: field: message
  --seed S       Seed of every random decision (toxicity, jitter, slicer sizes): the same seed and
                 traffic repeat the same faults. Default: the file's seed, else a fresh one (printed)
  --host H       Address of the API (default 127.0.0.1). Anything but loopback requires a token
  --port P       Port of the API (default ${DEFAULT_API_PORT}; 0 picks a free one)
  --token T      Require "Authorization: Bearer T" on API requests (also BULWARK_PROXY_TOKEN)
  --events       Print every connection and toxic activation as a JSON line on stdout
  -h, --help     Show this help

Example: bulwark proxy --config proxies.yaml --seed 42
  then:  curl -X POST localhost:8474/proxies/redis/toxics -d '{"type":"latency","attributes":{"latency":100}}'

Exit code: 0 after a clean stop, 2 on bad input.
`;

function parseSeed(text: string): Seed {
  if (text === '') throw new UsageError('proxy: --seed must not be empty');
  const n = Number(text);
  return /^-?\d+$/.test(text) && Number.isSafeInteger(n) ? n : text;
}

function parsePort(text: string | undefined): number {
  if (text === undefined) return DEFAULT_API_PORT;
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= 0 && value <= 65535)) {
    throw new UsageError(`proxy: --port must be an integer from 0 to 65535, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** `bulwark proxy …`; returns the exit code. Throws {@link UsageError} on bad input. */
export async function proxyCommand(
  argv: readonly string[],
  io: CommandIO,
  deps: ProxyDependencies = defaultProxyDependencies,
): Promise<number> {
  const { values } = parseFlags(
    'proxy',
    argv,
    {
      config: { type: 'string' },
      seed: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      token: { type: 'string' },
      events: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    false,
  );
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const port = parsePort(values.port as string | undefined);
  const host = values.host as string;
  const token = (values.token as string | undefined) ?? deps.env.BULWARK_PROXY_TOKEN;
  let config: ProxyConfig = { proxies: [] };
  if (values.config !== undefined) {
    try {
      config = await loadProxyConfig(values.config as string);
    } catch (error) {
      if (!(error instanceof ProxyConfigError)) throw error;
      if (error.problems.length === 1) throw new UsageError(`proxy: ${error.problems[0]}`);
      io.err(`${error.problems.join('\n')}\n`);
      throw new UsageError(`proxy: ${error.problems.length} problems in ${values.config as string}`);
    }
  }
  const seed = values.seed !== undefined ? parseSeed(values.seed as string) : (config.seed ?? freshSeed());
  const runtime = createRuntime({ seed });
  let server: ProxyServer;
  try {
    server = new ProxyServer({ runtime, host, port, ...(token === undefined ? {} : { token }) });
  } catch (error) {
    throw new UsageError(
      `proxy: ${(error as Error).message.replace(/^ProxyServer: option "(\w+)"/, '--$1')}`,
    );
  }
  if (values.events) {
    runtime.events.subscribe(
      (event) => io.out(`${JSON.stringify(event)}\n`),
      ['proxy.toxic', 'proxy.connection'],
    );
  }
  try {
    await applyProxyConfig(server, config);
    await server.listen();
  } catch (error) {
    await server.close();
    if (error instanceof ProxyApiError) throw new UsageError(`proxy: ${error.message}`);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
      throw new UsageError(`proxy: cannot listen on ${host}:${port} for the API: ${code}`);
    }
    throw error;
  }
  io.err(`bulwark proxy: Toxiproxy API on ${server.url} (seed ${JSON.stringify(runtime.random.seed)})\n`);
  for (const proxy of server.list()) {
    io.err(`  ${proxy.name}: ${proxy.listen} → ${proxy.upstream}${proxy.enabled ? '' : ' (disabled)'}\n`);
  }
  deps.onReady?.(server);
  const signal = await deps.stopSignal();
  await server.close();
  io.err(`bulwark proxy: stopped (${signal})\n`);
  return 0;
}
