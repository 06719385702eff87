/**
 * The built-in scenarios of `bulwark lab`, in the order they run and are listed. Those that need an
 * external service (`services`, e.g. `db-pool`) run only when named.
 */
import type { Scenario } from '../scenario.js';
import { dbPool } from './db-pool.js';
import { disk } from './disk.js';
import { engine } from './engine.js';
import { network } from './network.js';
import { queue } from './queue.js';
import { race } from './race.js';
import { rateLimitScenario } from './rate-limit.js';
import { resource } from './resource.js';

export { dbPool } from './db-pool.js';
export { disk } from './disk.js';
export { engine } from './engine.js';
export { network } from './network.js';
export { queue } from './queue.js';
export { race } from './race.js';
export { rateLimitScenario } from './rate-limit.js';
export { resource } from './resource.js';

/**
 * The built-in scenarios, by name, in listing order (a fresh map: callers may add their own).
 * @example
 * const network = builtinScenarios().get('network');
 */
export function builtinScenarios(): Map<string, Scenario> {
  return new Map<string, Scenario>([
    [network.name, network as unknown as Scenario],
    [resource.name, resource as unknown as Scenario],
    [queue.name, queue as unknown as Scenario],
    [engine.name, engine as unknown as Scenario],
    [rateLimitScenario.name, rateLimitScenario as unknown as Scenario],
    [disk.name, disk as unknown as Scenario],
    [race.name, race as unknown as Scenario],
    [dbPool.name, dbPool as unknown as Scenario],
  ]);
}
