/** Chaos experiments against real targets (`bulwark run FILE`). */
export { ExperimentFileError, loadExperimentFile, parseExperimentFile } from './file.js';
export { LoadGenerator, type LoadPhase } from './load.js';
export { metricValue, ProviderError, type ProviderResult } from './providers.js';
export {
  renderExperimentHtml,
  renderExperimentMarkdown,
  renderExperimentTerminal,
  verdictLine,
} from './report.js';
export {
  type ActivityRun,
  type ActivityStage,
  type ExperimentJournal,
  type ExperimentStatus,
  type LoadReport,
  type RunExperimentOptions,
  runExperiment,
  type SteadyStateRun,
} from './run.js';
export { withinTolerance } from './tolerance.js';
export type * from './types.js';
