/** Flips: the flip log on `cutover.control` and the follower every sidecar runs. */
export * from './mode.js';
export * from './types.js';
export { appendFlip, readFlips, readFlipLog, flipFromDelivery, currentModes, canarySince, defaultWho, modesFromLog, type FlipReadOptions } from './log.js';
export { FlipJudge, type JudgedFlip, type FlipRejection, type FlipRejectionReason } from './judge.js';
export { flipPolicy, isOperator, whyNotOperator, type FlipPolicy } from './policy.js';
export { createFlipFollower, startFlipFollower, type FlipFollower, type FlipFollowerOptions, type FlowModeTarget } from './follower.js';
