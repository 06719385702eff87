/**
 * HTTP faults for in-process clients: an undici interceptor (`agent.compose(httpFaultInterceptor(…))`),
 * which Node's global `fetch` honours through `setGlobalDispatcher`. Status faults answer without reaching
 * the server, resets fail the request as a reset socket would, truncation cuts the real response's body,
 * latency delays the real request. Nothing here imports undici at load time: only
 * {@link installHttpFaults} loads it, when called.
 */
import { constants } from 'node:os';
import type { Dispatcher } from 'undici';
import type { Clock } from '../../core/clock.js';
import { type HttpFaultRule, HttpFaultRules, type HttpFaultRulesOptions } from './rules.js';

type Handler = Dispatcher.DispatchHandler;
type Controller = Parameters<NonNullable<Handler['onRequestStart']>>[0];

/** The controller of a response that never touches the network. */
class SyntheticController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  onAbort: ((reason: Error) => void) | undefined;
  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.onAbort?.(reason);
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
}

function resetError(): Error {
  return Object.assign(new Error('read ECONNRESET'), {
    errno: -(constants.errno.ECONNRESET ?? 104),
    code: 'ECONNRESET',
    syscall: 'read',
  });
}

/** What undici raises when the server closes mid-body (`SocketError`, without loading undici). */
function truncatedError(): Error {
  return Object.assign(new Error('other side closed'), { name: 'SocketError', code: 'UND_ERR_SOCKET' });
}

function headersTimeoutError(): Error {
  return Object.assign(new Error('Headers Timeout Error'), {
    name: 'HeadersTimeoutError',
    code: 'UND_ERR_HEADERS_TIMEOUT',
  });
}

function respond(
  handler: Handler,
  status: number,
  headers: Readonly<Record<string, string>>,
  body: string,
): void {
  const controller = new SyntheticController();
  const payload = Buffer.from(body, 'utf8');
  const all: Record<string, string> = { 'content-length': String(payload.length) };
  for (const [key, value] of Object.entries(headers)) all[key.toLowerCase()] = value;
  try {
    handler.onRequestStart?.(controller as unknown as Controller, {});
    if (controller.aborted) {
      handler.onResponseError?.(controller as unknown as Controller, controller.reason as Error);
      return;
    }
    handler.onResponseStart?.(controller as unknown as Controller, status, all, '');
    if (payload.length > 0 && !controller.aborted)
      handler.onResponseData?.(controller as unknown as Controller, payload);
    if (controller.aborted)
      handler.onResponseError?.(controller as unknown as Controller, controller.reason as Error);
    else handler.onResponseEnd?.(controller as unknown as Controller, {});
  } catch (error) {
    handler.onResponseError?.(controller as unknown as Controller, error as Error);
  }
}

function fail(handler: Handler, error: Error): void {
  const controller = new SyntheticController();
  handler.onRequestStart?.(controller as unknown as Controller, {});
  handler.onResponseError?.(controller as unknown as Controller, controller.reason ?? error);
}

function hang(handler: Handler, clock: Clock, afterMs: number): void {
  const controller = new SyntheticController();
  let done = false;
  const timer =
    afterMs > 0
      ? clock.setTimer(
          afterMs,
          () => {
            if (done) return;
            done = true;
            handler.onResponseError?.(controller as unknown as Controller, headersTimeoutError());
          },
          undefined,
        )
      : undefined;
  controller.onAbort = (reason) => {
    if (done) return;
    done = true;
    timer?.cancel();
    handler.onResponseError?.(controller as unknown as Controller, reason);
  };
  handler.onRequestStart?.(controller as unknown as Controller, {});
}

function truncating(handler: Handler, bytes: number, clock: Clock): Handler {
  let passed = 0;
  let cut = false;
  return {
    onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
    onRequestUpgrade: (controller, status, headers, socket) =>
      handler.onRequestUpgrade?.(controller, status, headers, socket),
    onResponseStart: (controller, status, headers, message) =>
      handler.onResponseStart?.(controller, status, headers, message),
    onResponseData: (controller, chunk) => {
      if (cut) return;
      const room = bytes - passed;
      if (chunk.length <= room) {
        passed += chunk.length;
        handler.onResponseData?.(controller, chunk);
        return;
      }
      cut = true;
      if (room > 0) handler.onResponseData?.(controller, chunk.subarray(0, room));
      passed = bytes;
      // The client sees the body end early, as when the server goes away mid-body; the real response is
      // dropped (its end, or the abort's error, no longer reaches the client).
      // Deferred: fetch settles its body stream correctly only once the data callback has returned.
      const error = truncatedError();
      clock.setTimer(
        0,
        () => {
          handler.onResponseError?.(controller, error);
          controller.abort(error);
        },
        undefined,
      );
    },
    onResponseEnd: (controller, trailers) => {
      if (!cut) handler.onResponseEnd?.(controller, trailers);
    },
    onResponseError: (controller, error) => {
      if (!cut) handler.onResponseError?.(controller, error);
    },
  };
}

function defaultPort(protocol: string): number {
  return protocol === 'https:' ? 443 : 80;
}

/**
 * An undici interceptor that applies HTTP fault rules to the requests of the dispatcher it composes.
 *
 * @example
 * import { Agent, setGlobalDispatcher } from 'undici';
 * const rules = new HttpFaultRules({
 *   rules: [{ path: '/v1/*', fault: httpFault.tooManyRequests({ retryAfter: '1s' }), schedule: schedule.firstN(2) }],
 * });
 * setGlobalDispatcher(new Agent().compose(httpFaultInterceptor(rules)));
 * await fetch('http://127.0.0.1:8080/v1/users'); // 429, then 429, then the real answer
 */
export function httpFaultInterceptor(
  rules: HttpFaultRules | HttpFaultRulesOptions,
): Dispatcher.DispatcherComposeInterceptor {
  const engine = rules instanceof HttpFaultRules ? rules : new HttpFaultRules(rules);
  const clock = engine.clock;
  return (dispatch) => (options, handler) => {
    const origin = options.origin === undefined ? undefined : new URL(String(options.origin));
    const decision = engine.decide({
      host: origin?.hostname ?? '',
      port: origin === undefined ? 80 : Number(origin.port) || defaultPort(origin.protocol),
      method: options.method,
      path: options.path,
    });
    if (decision === undefined) return dispatch(options, handler);
    switch (decision.kind) {
      case 'status':
        clock.setTimer(
          0,
          () => respond(handler, decision.status, decision.headers, decision.body),
          undefined,
        );
        return true;
      case 'reset':
        clock.setTimer(0, () => fail(handler, resetError()), undefined);
        return true;
      case 'timeout':
        hang(handler, clock, decision.afterMs);
        return true;
      case 'truncate':
        return dispatch(options, truncating(handler, decision.bytes, clock));
      case 'latency':
        clock.setTimer(decision.delayMs, () => dispatch(options, handler), undefined);
        return true;
    }
  };
}

/** What {@link installHttpFaults} returns: `uninstall()` restores the previous global dispatcher. */
export interface InstalledHttpFaults {
  readonly rules: HttpFaultRules;
  uninstall(): Promise<void>;
}

/**
 * Routes every `fetch` of the process (Node's global one included) through the fault rules, until
 * `uninstall()`. Loads undici on first call.
 * @example
 * const chaos = await installHttpFaults({ rules: [{ host: 'api.example.com', fault: httpFault.unavailable() }] });
 * try { await runTests(); } finally { await chaos.uninstall(); }
 */
export async function installHttpFaults(
  rules: HttpFaultRules | HttpFaultRulesOptions | readonly HttpFaultRule[],
): Promise<InstalledHttpFaults> {
  const undici = await import('undici');
  const engine =
    rules instanceof HttpFaultRules
      ? rules
      : new HttpFaultRules(Array.isArray(rules) ? { rules } : (rules as HttpFaultRulesOptions));
  const previous = undici.getGlobalDispatcher();
  const agent = new undici.Agent();
  undici.setGlobalDispatcher(agent.compose(httpFaultInterceptor(engine)));
  return {
    rules: engine,
    async uninstall() {
      undici.setGlobalDispatcher(previous);
      await agent.close();
    },
  };
}
