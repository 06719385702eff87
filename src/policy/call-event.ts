import { CALL_OUTCOME_INDEX } from '../core/events.js';

/** The outcomes' indices (in `CALL_OUTCOMES`), as policies report them through their `SourceEvents`. */
export const SUCCESS = CALL_OUTCOME_INDEX.success;
export const FAILURE = CALL_OUTCOME_INDEX.failure;
export const REJECTED = CALL_OUTCOME_INDEX.rejected;
export const TIMEOUT = CALL_OUTCOME_INDEX.timeout;
export const CANCELLED = CALL_OUTCOME_INDEX.cancelled;
export const FALLBACK = CALL_OUTCOME_INDEX.fallback;
