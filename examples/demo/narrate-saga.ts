import { mismatchStepsText } from '../../reports/saga.js';
import type { Report } from '../../reports/types.js';
import { n } from './narrate.js';

/**
 * The demo's narration of its saga flows (the checkout chain): how the sagas ended, which steps were
 * refused and undone, and whether each outcome matched the REST chain's answer.
 */
export function printSagaFlows(out: (l: string) => void, report: Report): void {
  const flows = report.flows.filter((f) => f.saga);
  if (flows.length === 0) return;
  out('Saga flows (a chain of REST calls proven as a saga before the switch):');
  for (const f of flows) {
    const g = f.saga!;
    const list = (pick: (s: (typeof g.steps)[number]) => number): string => g.steps.filter((s) => pick(s) > 0).map((s) => `${s.name} ${n(pick(s))}`).join(', ') || 'none';
    out(`  ${f.flow} ${f.verdict.status} as saga ${g.name}: ${n(f.outcomes.match)} of ${n(f.parity.compared)} outcomes match the REST chain's answer.`);
    out(`    sagas: ${n(g.ended.completed)} completed, ${n(g.ended.compensated)} compensated, ${n(g.ended.stuck)} stuck; refused at ${list((s) => s.refused)}; failed at ${list((s) => s.failed)}.`);
    out(`    compensations ran: ${list((s) => s.compensated)} undone${g.steps.some((s) => s.compensationFailed > 0) ? `, ${list((s) => s.compensationFailed)} could not be undone` : ''}.`);
    if (g.mismatchSteps.length > 0) out(`    mismatches come from step ${mismatchStepsText(g)}: see the flow's section in report.txt.`);
    else if (f.parity.compared > 0) out('    Every saga ended as the chain did, undoing the steps before a refusal as the chain does by hand: the saga can stand for the chain.');
  }
  out('');
}
