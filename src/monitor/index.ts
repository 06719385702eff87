/**
 * `bulwark/monitor`: alerts, failure-pattern analysis, health checks and the supervisor.
 * (Metrics and the dashboard are added beside these by their own module.)
 */
export * from './alerts/index.js';
export { EventsFileError, eventToJsonLine, readEventsFile, recordEvents } from './events-file.js';
export * from './health/index.js';
export {
  type AnalysedEvent,
  analysePatterns,
  type Burst,
  type Correlation,
  type Finding,
  type FindingKind,
  normaliseMessage,
  PATTERN_EVENT_TYPES,
  type PatternOptions,
  type PatternReport,
  PatternWatch,
  type Periodicity,
  type RetryStats,
  renderPatternsMarkdown,
  renderPatternsTerminal,
  type Signature,
} from './patterns.js';
