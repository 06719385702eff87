/**
 * `bulwark/chaos/http`: HTTP faults — 429 with Retry-After, 503, latency, connection resets, truncated
 * bodies — on rules matching host, method and path, on the chaos module's seeded schedules. For in-process
 * `fetch`, an undici interceptor; for other processes, the proxy's HTTP mode (`bulwark/chaos/tcp`).
 * undici is loaded only by `installHttpFaults`.
 */
export {
  httpFaultInterceptor,
  type InstalledHttpFaults,
  installHttpFaults,
} from './interceptor.js';
export {
  type HttpFaultAction,
  type HttpFaultDecision,
  type HttpFaultRule,
  HttpFaultRules,
  type HttpFaultRulesOptions,
  type HttpFaultSpec,
  type HttpRequestInfo,
  httpFault,
} from './rules.js';
