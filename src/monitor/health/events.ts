/**
 * Events of health checks, the supervisor and healing actions: the contract with metrics
 * (`bulwark_health_up{component,probe}`, `bulwark_restarts_total{component,reason}`), the dashboard and
 * the alert rules (`healthFailing`, `componentFailed`).
 */

/** Kubernetes' three probes. */
export type ProbeKind = 'liveness' | 'readiness' | 'startup';

/** What a supervised child went through. */
export type ChildState = 'started' | 'crashed' | 'restarting' | 'stopped' | 'failed';

declare module '../../core/events.js' {
  interface BulwarkEventMap {
    /**
     * One probe ran. `ok` is this result; `healthy` the probe's state after its thresholds (what
     * `/healthz` and `/readyz` report). `source` is the component's name.
     */
    'health.check': {
      component: string;
      probe: ProbeKind;
      ok: boolean;
      healthy: boolean;
      durationMs: number;
      error?: string;
    };
    /**
     * A supervised child changed state. `reason` says why (`exit`, `crash`, `sibling`, `intensity`, …),
     * `restarts` counts its restarts so far, `delayMs` is the backoff before a restart. `source` is the
     * supervisor's name.
     */
    'supervisor.child': {
      child: string;
      state: ChildState;
      reason: string;
      restarts: number;
      delayMs?: number;
      error?: string;
    };
    /** The supervisor gave up (restart intensity exceeded) and escalates to its parent. */
    'supervisor.escalated': { child: string; restarts: number; periodMs: number };
    /** A healing action ran against `target`. */
    'healing.action': { action: string; target: string; ok: boolean; error?: string };
  }
}
