/** Flips: the flip log on `cutover.control` and the follower every sidecar runs. */
export * from './mode.js';
export * from './types.js';
export { appendFlip, readFlips, flipFromDelivery, currentModes, canarySince, defaultWho, modesFromLog } from './log.js';
export { createFlipFollower, startFlipFollower, type FlipFollower, type FlipFollowerOptions, type FlowModeTarget } from './follower.js';
