/**
 * `bulwark/lab`: the chaos lab. So far its statistics (rates with Wilson intervals, before/after tests,
 * consistency with an analytic prediction, power warnings) and the bounded latency histogram; the
 * scenario runner, reports and `bulwark lab` build on them.
 */
export * from './histogram.js';
export * from './stats.js';
