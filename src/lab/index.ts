/**
 * `bulwark/lab`: the chaos lab. Its statistics (rates with Wilson intervals, before/after tests,
 * consistency with an analytic prediction, power warnings), the bounded latency histogram, scenarios
 * and their runner, the built-in scenarios, and the JSON report document every report renders from.
 */

export * from './document.js';
export * from './experiment/index.js';
export * from './histogram.js';
export { evaluate, type RunScenarioOptions, runScenario, runSeed, runTasks } from './runner.js';
export {
  type Check,
  type ComparisonSpec,
  defineScenario,
  isOptIn,
  type ParamValue,
  type Recorder,
  type Scenario,
  type ScenarioContext,
  type ScenarioDefinition,
  type ScenarioSetup,
  ServiceUnavailableError,
} from './scenario.js';
export { builtinScenarios, dbPool, disk, network, race, resource } from './scenarios/index.js';
export * from './stats.js';
export { loadScenarioFile, parseScenarioFile, ScenarioFileError } from './yaml.js';
