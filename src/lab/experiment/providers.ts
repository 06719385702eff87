/**
 * Runs one provider (HTTP, process, Prometheus metric, Toxiproxy API, module or function) under a
 * deadline and the experiment's signal, and returns its output and main value.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Clock } from '../../core/clock.js';
import { toMs } from '../../core/duration.js';
import type { Runtime } from '../../core/runtime.js';
import type { Provider } from './types.js';

/** What a provider produced: `value` is what scalar tolerances compare (status, exit code, metric…). */
export interface ProviderResult {
  output: unknown;
  value: unknown;
  latencyMs: number;
  /** The text `contains`/`matches` tolerances look at. */
  text: string;
  /** The HTTP status, for providers that make a request (`http`, `toxiproxy`). */
  status?: number;
}

const OUTPUT_LIMIT = 64 * 1024;

const DEFAULT_TIMEOUT: Record<Provider['type'], number> = {
  http: 5000,
  metric: 5000,
  toxiproxy: 5000,
  process: 30_000,
  module: 30_000,
  function: 30_000,
};

/** An error a provider raised (unreachable URL, non-2xx Toxiproxy answer, command not found…). */
export class ProviderError extends Error {
  override readonly name = 'ProviderError';
}

/** Runs `provider`; rejects on timeout (`timed out after N ms`), abort, or the provider's own failure. */
export async function runProvider(
  provider: Provider,
  runtime: Runtime,
  signal: AbortSignal,
  baseDir: string,
): Promise<ProviderResult> {
  const timeoutMs =
    provider.timeout === undefined ? DEFAULT_TIMEOUT[provider.type] : toMs(provider.timeout, 'timeout');
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  const timer = runtime.clock.setTimer(
    timeoutMs,
    (c) => c.abort(new ProviderError(`timed out after ${timeoutMs} ms`)),
    controller,
  );
  const started = runtime.clock.now();
  const work = dispatch(provider, runtime, controller.signal, baseDir, started);
  try {
    const settled = await Promise.race([work, aborted(controller.signal)]);
    return { ...settled, latencyMs: runtime.clock.now() - started };
  } catch (error) {
    // Stopped (timeout, abort): give the work a moment to wind down, so that what runs next — the
    // rollbacks — does not race an action that ignores its signal. HTTP and processes stop at once.
    if (controller.signal.aborted) await windDown(work, runtime);
    throw error;
  } finally {
    timer.cancel();
    signal.removeEventListener('abort', onAbort);
  }
}

/** How long a stopped provider's work is waited for before going on without it. */
const WIND_DOWN_MS = 2000;

function windDown(work: Promise<unknown>, runtime: Runtime): Promise<void> {
  return new Promise((resolve) => {
    const timer = runtime.clock.setTimer(WIND_DOWN_MS, resolve, undefined);
    work.then(
      () => {
        timer.cancel();
        resolve();
      },
      () => {
        timer.cancel();
        resolve();
      },
    );
  });
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

type Outcome = Omit<ProviderResult, 'latencyMs'>;

async function dispatch(
  provider: Provider,
  runtime: Runtime,
  signal: AbortSignal,
  baseDir: string,
  started: number,
): Promise<Outcome> {
  switch (provider.type) {
    case 'http': {
      const response = await request(provider.url, provider.method, provider.headers, provider.body, signal);
      const body = await boundedText(response);
      const headers = Object.fromEntries(response.headers);
      const latencyMs = runtime.clock.now() - started;
      return {
        output: { status: response.status, latencyMs, body, headers },
        value: response.status,
        text: body,
      };
    }
    case 'metric': {
      const response = await request(provider.url, 'GET', undefined, undefined, signal);
      if (!response.ok) throw new ProviderError(`${provider.url} answered ${response.status}`);
      const value = metricValue(await response.text(), provider.metric, provider.labels ?? {});
      if (value === undefined) {
        throw new ProviderError(
          `${provider.url} has no series ${seriesName(provider.metric, provider.labels)}`,
        );
      }
      return { output: value, value, text: String(value) };
    }
    case 'toxiproxy':
      return toxiproxy(provider, signal);
    case 'process':
      return run(provider.command, provider.cwd ?? baseDir, provider.env, signal, runtime.clock);
    case 'module': {
      const path = isAbsolute(provider.path) ? provider.path : resolve(baseDir, provider.path);
      const module = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
      const name = provider.export ?? 'default';
      const fn = module[name];
      if (typeof fn !== 'function') throw new ProviderError(`${provider.path} exports no function "${name}"`);
      const value: unknown = await fn(provider.arguments, { runtime, signal });
      return { output: value, value, text: textOf(value) };
    }
    case 'function': {
      const value: unknown = await provider.run({ runtime, signal });
      return { output: value, value, text: textOf(value) };
    }
  }
}

function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

async function request(
  url: string,
  method: string | undefined,
  headers: Record<string, string> | undefined,
  body: unknown,
  signal: AbortSignal,
): Promise<Response> {
  const init: RequestInit = { method: method ?? 'GET', signal, redirect: 'manual' };
  if (headers !== undefined) init.headers = headers;
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    if (typeof body !== 'string') init.headers = { 'content-type': 'application/json', ...headers };
  }
  try {
    return await fetch(url, init);
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new ProviderError(
      `${init.method} ${url} failed: ${cause?.code ?? cause?.message ?? String(error)}`,
    );
  }
}

async function boundedText(response: Response): Promise<string> {
  const text = await response.text();
  return text.length > OUTPUT_LIMIT ? `${text.slice(0, OUTPUT_LIMIT)}…` : text;
}

function seriesName(metric: string, labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {});
  return entries.length === 0 ? metric : `${metric}{${entries.map(([k, v]) => `${k}="${v}"`).join(',')}}`;
}

/**
 * The sum of the values of every series of `metric` whose labels include `labels`, from Prometheus text
 * exposition; undefined when none matches.
 */
export function metricValue(
  text: string,
  metric: string,
  labels: Record<string, string>,
): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    // Label values are quoted (and may hold `}`); anything after the value (a timestamp, an OpenMetrics
    // exemplar `# {…} v`) is ignored.
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\})?\s+(\S+)/.exec(line);
    if (match === null || match[1] !== metric) continue;
    const found = new Map<string, string>();
    for (const label of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      found.set(
        label[1] as string,
        (label[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c)),
      );
    }
    if (!Object.entries(labels).every(([k, v]) => found.get(k) === v)) continue;
    const raw = match[4] as string;
    const value =
      raw === '+Inf' ? Number.POSITIVE_INFINITY : raw === '-Inf' ? Number.NEGATIVE_INFINITY : Number(raw);
    sum = (sum ?? 0) + value;
  }
  return sum;
}

async function toxiproxy(
  provider: Extract<Provider, { type: 'toxiproxy' }>,
  signal: AbortSignal,
): Promise<Outcome> {
  const api = (provider.api ?? 'http://127.0.0.1:8474').replace(/\/+$/, '');
  const proxy = encodeURIComponent(provider.proxy ?? '');
  const toxicName = encodeURIComponent(provider.toxic?.name ?? '');
  const calls: Record<ToxiproxyAction, [string, string, unknown]> = {
    addToxic: ['POST', `/proxies/${proxy}/toxics`, provider.toxic],
    updateToxic: ['POST', `/proxies/${proxy}/toxics/${toxicName}`, provider.toxic],
    removeToxic: ['DELETE', `/proxies/${proxy}/toxics/${toxicName}`, undefined],
    enableProxy: ['POST', `/proxies/${proxy}`, { enabled: true }],
    disableProxy: ['POST', `/proxies/${proxy}`, { enabled: false }],
    reset: ['POST', '/reset', undefined],
  };
  const [method, path, body] = calls[provider.action];
  const response = await request(`${api}${path}`, method, undefined, body, signal);
  const text = await boundedText(response);
  if (!response.ok) {
    let reason = text.trim();
    try {
      reason = String((JSON.parse(text) as { error?: unknown }).error ?? reason);
    } catch {}
    throw new ProviderError(
      `toxiproxy ${provider.action} (${method} ${path}) answered ${response.status}: ${reason}`,
    );
  }
  let output: unknown = text;
  try {
    output = text === '' ? null : JSON.parse(text);
  } catch {}
  return { output, value: response.status, text, status: response.status };
}

type ToxiproxyAction = Extract<Provider, { type: 'toxiproxy' }>['action'];

function run(
  command: readonly string[],
  cwd: string,
  env: Record<string, string> | undefined,
  signal: AbortSignal,
  clock: Clock,
): Promise<Outcome> {
  return new Promise((resolvePromise, reject) => {
    const [program, ...args] = command;
    if (program === undefined) {
      reject(new ProviderError('process: empty command'));
      return;
    }
    const child = spawn(program, args, {
      cwd,
      env: env === undefined ? process.env : { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      signal,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      if (stdout.length < OUTPUT_LIMIT) stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < OUTPUT_LIMIT) stderr += chunk.toString('utf8');
    });
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (signal.aborted) reject(signal.reason);
      else reject(new ProviderError(`cannot run ${program}: ${error.code ?? error.message}`));
    });
    let settled = false;
    const finish = (code: number | null, killedBy: NodeJS.Signals | null) => {
      if (settled || signal.aborted) return;
      settled = true;
      // As a shell reports it: 128 + the signal's number when a signal ended the process.
      const exitCode = code ?? 128 + (killedBy === null ? 0 : (constants.signals[killedBy] ?? 0));
      resolvePromise({ output: { exitCode, stdout, stderr }, value: exitCode, text: stdout });
    };
    child.once('close', finish);
    // A command may exit while a background child it started still holds stdout open: 'close' would wait
    // for that child. Give the pipes a moment to drain after the exit, then stop waiting for them.
    child.once('exit', (code, killedBy) => {
      clock.setTimer(
        100,
        () => {
          if (settled) return;
          child.stdout.destroy();
          child.stderr.destroy();
          finish(code, killedBy);
        },
        undefined,
      );
    });
  });
}
