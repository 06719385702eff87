/**
 * `bulwark/chaos/tcp`: a Toxiproxy-compatible TCP fault proxy. Toxics (`latency`, `bandwidth`, `timeout`,
 * `reset_peer`, `slow_close`, `limit_data`, `slicer`) act on the bytes between a client and a real
 * dependency; the HTTP API on 127.0.0.1:8474 is Toxiproxy 2.x's, so existing clients drive it unchanged.
 */
export {
  applyProxyConfig,
  loadProxyConfig,
  type ProxyConfig,
  type ProxyConfigEntry,
  ProxyConfigError,
  parseProxyConfig,
} from './config.js';
export { ProxyApiError } from './errors.js';
export { HttpProxy } from './http-proxy.js';
export { type HostPort, type ProxyJson, TcpProxy } from './proxy.js';
export {
  DEFAULT_API_PORT,
  type FaultProxy,
  type ProxyInput,
  ProxyServer,
  type ProxyServerOptions,
  TOXIPROXY_API_VERSION,
} from './server.js';
export {
  HTTP_TOXIC_TYPES,
  parseToxic,
  TCP_TOXIC_TYPES,
  type TcpToxicType,
  TOXIC_TYPES,
  type ToxicAttributes,
  type ToxicityMode,
  type ToxicJson,
  type ToxicMatch,
  type ToxicSpec,
  type ToxicStream,
  type ToxicType,
} from './toxics.js';
