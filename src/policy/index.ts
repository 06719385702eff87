/**
 * `bulwark/policy`: resilience policies and their composition. Depends on `bulwark/core` only.
 */
export { type Backoff, backoff } from './backoff.js';
export * from './bulkhead.js';
export * from './circuit-breaker.js';
export type { PolicyContext } from './context.js';
export * from './fallback.js';
export * from './hedge.js';
export { Pipeline, pipeline } from './pipeline.js';
export type { Policy, PolicyOptions, Task } from './policy.js';
export * from './rate-limit.js';
export * from './retry.js';
export * from './timeout.js';
