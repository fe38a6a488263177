/** Flips (issue 6): the flip log on `cutover.control`, the follower every sidecar runs, the readiness gate, CLI. */
export * from './mode.js';
export * from './types.js';
export { appendFlip, readFlips, flipFromDelivery, currentModes, canarySince, defaultWho } from './log.js';
export { decideFlip, isGated, usesCanaryEvidence, parseTargetMode, summarizeReport, type FlipDecision, type FlipRequest } from './gate.js';
export { createFlipFollower, startFlipFollower, type FlipFollower, type FlipFollowerOptions, type FlowModeTarget } from './follower.js';
export { flipFlow, flowHistory, flowStatus, gateReport, modesFromLog, type ControlContext, type ControlFlow, type FlipInput, type FlipResult, type FlowStatus } from './control.js';
export { flipCommand, statusCommand, historyCommand, historyLine, FLIP_USAGE, STATUS_USAGE, HISTORY_USAGE, type FlipIo, type FlipCliDeps } from './cli.js';
export { createAdminControl, type AdminControl, type AdminControlOptions } from './admin.js';
