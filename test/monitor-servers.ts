/**
 * Local stand-ins for the services alert receivers talk to: a real SMTP server (smtp-server, messages
 * parsed with mailparser) and an HTTP server standing in for Slack and webhooks, whose answers a test
 * scripts (429 with Retry-After, 500, …). Both listen on 127.0.0.1 on a free port.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { Seed } from '../src/core/random.js';
import { virtualRuntime } from '../src/core/runtime.js';
import { AlertRuleEngine } from '../src/monitor/alerts/engine.js';
import { Notifier } from '../src/monitor/alerts/notifier.js';

export interface SmtpStandIn {
  readonly port: number;
  readonly messages: ParsedMail[];
  /** Logins seen, as `user:pass`. */
  readonly logins: string[];
  close(): Promise<void>;
}

export async function startSmtp(port = 0): Promise<SmtpStandIn> {
  const messages: ParsedMail[] = [];
  const logins: string[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    logger: false,
    onAuth(auth, _session, callback) {
      logins.push(`${auth.username}:${auth.password}`);
      callback(null, { user: auth.username });
    },
    onData(stream, _session, callback) {
      simpleParser(stream).then(
        (mail) => {
          messages.push(mail);
          callback();
        },
        (error: Error) => callback(error),
      );
    },
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.server.address() as AddressInfo).port,
    messages,
    logins,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface RecordedRequest {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: unknown;
  /** The status the stand-in answered. */
  readonly status: number;
}

export interface HttpStandIn {
  readonly port: number;
  /** Every request, answered or not. */
  readonly requests: RecordedRequest[];
  /** Answers for the next requests, in order (then 200): a status, optionally with headers; status 0 never answers. */
  readonly script: { status: number; headers?: Record<string, string> }[];
  /** The requests answered 2xx. */
  accepted(): RecordedRequest[];
  close(): Promise<void>;
}

/** An HTTP server that records JSON POSTs; `port` 0 picks a free one. */
export async function startHttp(port = 0): Promise<HttpStandIn> {
  const requests: RecordedRequest[] = [];
  const script: { status: number; headers?: Record<string, string> }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const answer = script.shift() ?? { status: 200 };
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = Buffer.concat(chunks).toString('utf8');
      }
      requests.push({ path: req.url ?? '', headers: req.headers, body, status: answer.status });
      if (answer.status === 0) return; // hangs until the client gives up or the server closes
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(answer.status === 200 ? 'ok' : 'error');
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    script,
    accepted: () => requests.filter((r) => r.status >= 200 && r.status < 300),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `condition` until it holds; fails after `timeoutMs` of real time (real I/O only). */
export async function waitFor(
  condition: () => boolean,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`waitFor: ${what} did not hold within ${timeoutMs}ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Alerting on a virtual runtime with one circuit-open rule, firing for "db" after one evaluation. */
export async function firingAlerting(seed: Seed = 11) {
  const rt = virtualRuntime(seed);
  const notifier = new Notifier({
    runtime: rt,
    receivers: [{ name: 'team', sendResolved: true, send: async () => undefined }],
    route: { receiver: 'team' },
  });
  const engine = new AlertRuleEngine({
    runtime: rt,
    rules: [{ kind: 'circuitOpen', name: 'CircuitOpen' }],
    onAlert: (a) => notifier.receive(a),
  });
  rt.events.emit({
    type: 'circuit.transition',
    source: 'db',
    at: 0,
    from: 'closed',
    to: 'open',
    reason: 'failures',
  });
  await rt.clock.advance(15_000);
  return {
    rt,
    notifier,
    engine,
    async close() {
      engine.close();
      await notifier.close();
    },
  };
}
