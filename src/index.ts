/**
 * `bulwark`: the core runtime and the resilience policies. Heavier modules (chaos, lab, queue, engine,
 * monitor) are separate subpaths so that importing a policy never loads them.
 */
export * from './core/index.js';
export * from './policy/index.js';
