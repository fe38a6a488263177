import type { TrustConfig } from '../config/identity.js';

/**
 * Who may move flows, as followers judge the flip log (src/flips/judge.ts). Made from a `trust:` section:
 * without one there is no policy and every well-formed flip is applied, as before identities existed.
 */
export interface FlipPolicy {
  /** Agents whose signed flips are applied; undefined when `trust.operators` is absent (every trusted agent). */
  operators: ReadonlySet<string> | undefined;
  /** Key ids of each trusted agent: whether a signer's flips would verify at all. */
  keys: ReadonlyMap<string, ReadonlySet<string>>;
  /** false: a rejected record is logged and counted, and applied anyway (`trust.enforce: false`). */
  enforce: boolean;
}

/** The flip policy of a config's `trust:` section; undefined without one. */
export function flipPolicy(trust: TrustConfig | undefined): FlipPolicy | undefined {
  if (!trust) return undefined;
  return {
    operators: trust.operators ? new Set(trust.operators) : undefined,
    keys: new Map(Object.entries(trust.agents).map(([agent, list]) => [agent, new Set(list.map((k) => k.keyId))])),
    enforce: trust.enforce,
  };
}

/** True when `agent` counts as an operator under `policy` (a trusted agent, and listed when operators are). */
export function isOperator(policy: FlipPolicy, agent: string): boolean {
  return policy.keys.has(agent) && (policy.operators === undefined || policy.operators.has(agent));
}

/**
 * Why flips signed by `signer` would be ignored by followers under an enforced `policy`, or undefined when
 * they would be applied (given the evidence rules). Lets a process refuse to write a record nobody would apply.
 */
export function whyNotOperator(policy: FlipPolicy | undefined, signer: { agent: string; keyId: string } | undefined): string | undefined {
  // With enforce off followers apply such flips anyway (logged and counted): writing one is allowed.
  if (!policy?.enforce) return undefined;
  if (!signer) return 'this process has no signing key, and with trust configured followers apply only flips signed by an operator';
  if (!policy.keys.get(signer.agent)?.has(signer.keyId)) return `its key ${JSON.stringify(signer.keyId)} of ${JSON.stringify(signer.agent)} is not in trust.agents, so followers would reject its flips`;
  if (!isOperator(policy, signer.agent)) return `${JSON.stringify(signer.agent)} is not in trust.operators (${[...policy.operators!].join(', ')}), so followers would ignore its flips`;
  return undefined;
}
