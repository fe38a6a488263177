import { textTable, valueText } from '../../reports/format.js';
import { ErrorCodes, ValidationError } from '../../src/errors.js';
import { sagaDefinition, type SagaDefinition } from '../../src/saga/model.js';
import { readSagaTopic } from '../../src/saga/projection.js';
import { outcomeOf, type SagaHistoryEntry, type SagaState } from '../../src/saga/state.js';
import type { SagaFailure, SagaStatus } from '../../src/saga/types.js';
import type { Server } from 'node:http';
import { openBus } from '../../src/bus/index.js';
import type { CutoverConfig } from '../../src/config/schema.js';
import { createRegistry } from '../../src/metrics.js';
import { SagaOrchestrator } from '../../src/saga/orchestrator.js';
import { ExitCode, loadConfig, parseCommandArgs, untilStopped, usageError, withBus, type CliIo, type CommandDeps } from '../io.js';
import { closeMetrics, metricsListen, serveMetrics } from '../metrics-server.js';

export const SAGA_USAGE = `usage: cutover saga list --config FILE [--saga NAME] [--status STATUS] [--json]
       cutover saga show ID --config FILE [--saga NAME] [--json]
       cutover saga run --config FILE [--saga NAME] [--metrics HOST:PORT]

  list: every saga of the config's sagas: (or --saga NAME): id, status (running, compensating, completed,
  compensated, stuck), the step it is at, when it last moved, why it failed; --status keeps one status.
  show: one saga's state, outcome and event history, oldest first (events that changed nothing, such as a
  late reply, are marked ignored). Both read the saga topics as they stand; they change nothing.
  run: an orchestrator replica for the config's sagas (or --saga NAME) until SIGINT/SIGTERM; start several
  to share the sagas. --metrics serves Prometheus metrics at http://HOST:PORT/metrics (bearer admin.token
  when the config has one; without a token only on a loopback address).

exit codes: 0 listed, shown or stopped, 1 some listed saga is stuck (CUTOVER_SAGA_STUCK), 2 usage or config error
or unknown saga (CUTOVER_SAGA_UNKNOWN)`;

const STATUSES: readonly SagaStatus[] = ['running', 'compensating', 'completed', 'compensated', 'stuck'];

/** `cutover saga list|show|run`. */
export async function sagaCommand(argv: string[], io: CliIo, deps: CommandDeps = {}): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    argv,
    { config: { type: 'string', short: 'c' }, saga: { type: 'string' }, status: { type: 'string' }, json: { type: 'boolean' }, metrics: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    SAGA_USAGE,
    true,
  );
  if (values.help) {
    io.out(SAGA_USAGE);
    return ExitCode.OK;
  }
  const [action, ...rest] = positionals;
  if (action !== 'list' && action !== 'show' && action !== 'run') throw usageError('saga needs list, show or run', SAGA_USAGE);
  if (action !== 'show' && rest.length > 0) throw usageError(`saga ${action} takes no ID`, SAGA_USAGE);
  if (action === 'show' && rest.length !== 1) throw usageError('saga show needs exactly one ID', SAGA_USAGE);
  if (!values.config) throw usageError(`saga ${action} needs --config FILE`, SAGA_USAGE);
  if (values.status !== undefined && !STATUSES.includes(values.status as SagaStatus)) throw usageError(`--status: expected one of ${STATUSES.join(', ')}`, SAGA_USAGE);
  const config = loadConfig(values.config, deps);
  let defs = config.sagas.map(sagaDefinition);
  if (values.saga !== undefined) defs = defs.filter((d) => d.name === values.saga);
  if (defs.length === 0) {
    throw new ValidationError(ErrorCodes.SAGA_UNKNOWN, values.saga === undefined ? `${values.config} declares no sagas:` : `no saga named ${JSON.stringify(values.saga)} under sagas: in ${values.config}`);
  }
  if (action === 'run') return run(io, deps, config, defs, metricsListen(values.metrics, SAGA_USAGE));
  const level = config.log.level === 'info' ? 'warn' : config.log.level;
  const states = await withBus(config, deps, async (bus) => (await Promise.all(defs.map(async (def) => [...(await readSagaTopic(bus, def)).sagas.values()]))).flat(), level);
  if (action === 'show') return show(io, defs, states, rest[0]!, values.json === true);
  return list(io, defs, states.filter((s) => values.status === undefined || s.status === values.status), values.json === true);
}

/** `cutover saga run`: one orchestrator replica until stopped. */
async function run(io: CliIo, deps: CommandDeps, config: CutoverConfig, defs: SagaDefinition[], metricsAt: { host: string; port: number } | undefined): Promise<number> {
  const registry = createRegistry({ defaultMetrics: true });
  let metricsServer: Server | undefined;
  try {
    if (metricsAt) metricsServer = await serveMetrics(config, metricsAt, registry);
    return await withBus(config, { ...deps, openBus: deps.openBus ?? ((c, l) => openBus(c, { logger: l, registry })) }, async (bus, logger) => {
      const orchestrator = new SagaOrchestrator({ bus, sagas: defs, logger, registry });
      try {
        await orchestrator.start();
        io.out(`saga: bus ${config.bus.kind}; driving ${defs.map((d) => `${d.name} (${d.topic})`).join(', ')}${metricsAt ? `; metrics http://${metricsAt.host}:${metricsAt.port}/metrics` : ''}`);
        await untilStopped(io.signal);
        io.out('saga: stopping');
      } finally {
        await orchestrator.close();
      }
      return ExitCode.OK;
    });
  } finally {
    await closeMetrics(metricsServer);
  }
}

function list(io: CliIo, defs: SagaDefinition[], states: SagaState[], json: boolean): number {
  if (json) io.out(JSON.stringify(states.map((s) => summary(s, defs)), null, 2));
  else if (states.length === 0) io.out('no sagas');
  else {
    const rows = states.map((s) => {
      const x = summary(s, defs);
      return [x.saga, x.id, x.status, x.at ?? '', x.updated ?? '', x.reason ? failureText(x.reason) : ''];
    });
    io.out(textTable(['SAGA', 'ID', 'STATUS', 'AT', 'LAST EVENT', 'REASON'], rows).join('\n'));
  }
  const stuck = states.filter((s) => s.status === 'stuck').length;
  if (stuck === 0) return ExitCode.OK;
  io.err(`${ErrorCodes.SAGA_STUCK}: ${stuck} saga${stuck === 1 ? ' is' : 's are'} stuck: see docs/sagas.md (runbook)`);
  return ExitCode.FAILURE;
}

function show(io: CliIo, defs: SagaDefinition[], states: SagaState[], id: string, json: boolean): number {
  const state = states.find((s) => s.id === id);
  if (!state) throw new ValidationError(ErrorCodes.SAGA_UNKNOWN, `no saga with id ${JSON.stringify(id)} on ${defs.map((d) => d.topic).join(', ')}`);
  const outcome = outcomeOf(state);
  if (json) {
    io.out(JSON.stringify({ ...summary(state, defs), input: state.input, steps: state.steps, ...(outcome ? { outcome } : {}), history: state.history }, null, 2));
    return ExitCode.OK;
  }
  const x = summary(state, defs);
  io.out(`saga ${x.saga} ${x.id}: ${x.status}${x.at ? ` at ${x.at}` : ''}`);
  if (x.reason) io.out(`${state.status === 'stuck' ? 'stuck' : 'failed'}: ${failureText(x.reason)}`);
  if (outcome?.status === 'completed') io.out(`result: ${outcome.result.status} ${valueText(outcome.result.body, 200)}`);
  io.out(`input: ${valueText(state.input, 200)}`);
  io.out('');
  io.out(textTable(['TIME', 'EVENT', 'DETAIL', ''], state.history.map((h) => [h.time ?? '', h.type.replace(/^cutover\.saga\./, ''), detail(h), h.applied ? '' : 'ignored'])).join('\n'));
  return ExitCode.OK;
}

interface Summary {
  saga: string;
  id: string;
  status: SagaStatus;
  /** The step and phase the saga is at (running or compensating), or where it stopped (stuck). */
  at?: string;
  updated?: string;
  reason?: SagaFailure;
}

function summary(state: SagaState, defs: SagaDefinition[]): Summary {
  const last = state.history.filter((h) => h.applied).at(-1);
  const at = currentStep(state, defs.find((d) => d.name === state.saga));
  const reason = state.stuck ?? state.failure;
  return { saga: state.saga, id: state.id, status: state.status, ...(at ? { at } : {}), ...(last?.time ? { updated: last.time } : {}), ...(reason ? { reason } : {}) };
}

function currentStep(state: SagaState, def: SagaDefinition | undefined): string | undefined {
  if (state.status === 'stuck') return state.stuck ? `${state.stuck.step} (${state.stuck.phase})` : undefined;
  if (state.status !== 'running' && state.status !== 'compensating') return undefined;
  const phase = state.status === 'running' ? 'forward' : 'compensate';
  const step = state.steps.find((s) => s[phase].status === 'sent' || s[phase].status === 'failed');
  return step ? `${step.name} (${phase}, send ${step[phase].attempt}${def ? ` of ${def.steps.find((d) => d.name === step.name)!.retry.attempts}` : ''})` : undefined;
}

function failureText(f: SagaFailure): string {
  return `${f.step} ${f.phase}: ${f.code}${f.status !== undefined ? ` ${f.status}` : ''}: ${f.message}`;
}

function detail(h: SagaHistoryEntry): string {
  const d = (h.data ?? {}) as Record<string, unknown>;
  if (h.type === 'cutover.observation.bus') return `reply ${typeof d.status === 'number' ? d.status : ((d.error as { code?: string } | undefined)?.code ?? '')}`;
  const step = typeof d.step === 'string' ? `${d.step} ${String(d.phase)} send ${String(d.attempt)}` : '';
  if (d.failure) return `${step}: ${failureText(d.failure as SagaFailure)}`;
  if (d.reason) return failureText(d.reason as SagaFailure);
  if (d.reply) return `${step}: ${(d.reply as { status: number }).status}`;
  return step;
}
