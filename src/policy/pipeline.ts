import type { Policy, Stage } from './policy.js';
import { BasePolicy, isPolicy } from './runner.js';

/** Policies composed into one: the first is the outermost. */
export class Pipeline extends BasePolicy {
  readonly kind = 'pipeline';
  readonly stage: Stage;
  readonly policies: readonly Policy[];

  constructor(
    policies: readonly Policy[],
    readonly name = 'pipeline',
  ) {
    super();
    policies.forEach((policy, i) => {
      if (!isPolicy(policy)) {
        throw new TypeError(`pipeline: argument ${i} is not a Bulwark policy (got ${typeof policy})`);
      }
    });
    this.policies = policies;
    this.stage = { kind: 'pipeline', stages: policies.map((p) => p.stage) };
  }
}

/**
 * Composes policies, outermost first, into a policy with one `execute`. Events come from every layer.
 * Running a pipeline is equivalent to nesting the policies, but consecutive policies share one async
 * frame, so a four-policy pipeline costs little more than one policy.
 * @example
 * const resilient = pipeline(retry({ maxAttempts: 3 }), circuitBreaker(), timeout('2s'));
 * await resilient.execute(({ signal }) => fetch(url, { signal }));
 */
export function pipeline(...policies: Policy[]): Pipeline {
  return new Pipeline(policies);
}
