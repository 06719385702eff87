/**
 * `bulwark/monitor`: metrics (Prometheus, OpenTelemetry), the live dashboard and its history, fed by the
 * events every Bulwark component emits through its runtime.
 */

export * from './alerts/index.js';
export type {
  AlertsSnapshot,
  AlertView,
  ChildView,
  EscalationView,
  HealingView,
  HealthSnapshot,
  MonitorAlerts,
  PatternsSnapshot,
  ProbeView,
  SilenceView,
} from './dashboard/panels.js';
export { type DashboardServer, type DashboardServerOptions, startDashboard } from './dashboard/server.js';
export {
  type EventFileProblem,
  EventsFileError,
  eventToJsonLine,
  type FollowedFile,
  followEventFile,
  parseEventLine,
  readEventsFile,
  recordEvents,
} from './event-file.js';
export * from './health/index.js';
export {
  type HistoryPoint,
  type HistoryQuery,
  HistoryStore,
  type HistoryStoreOptions,
  HistoryUnavailableError,
} from './history.js';
export { errorKind, LiveAggregator, type LiveSnapshot, type PolicySnapshot, type RollupRow } from './live.js';
export {
  DEFAULT_BUCKETS,
  METRIC_EVENT_TYPES,
  METRIC_NAMES,
  OVERFLOW_LABEL,
  PrometheusMetrics,
  type PrometheusMetricsOptions,
} from './metrics.js';
export {
  type Controllable,
  createMonitor,
  Monitor,
  type MonitorOptions,
  type MonitorSnapshot,
} from './monitor.js';
export { OpenTelemetryMetrics, type OpenTelemetryMetricsOptions, OTEL_METRIC_NAMES } from './otel.js';
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
