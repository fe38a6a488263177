import { isCutoverError } from '../../src/errors.js';
import { parseDemoArgs, DEMO_USAGE } from './options.js';
import { DemoExit, runDemo } from './run.js';

/**
 * `npm start` (`tsx examples/demo/main.ts`): the cutover demo. See DEMO_USAGE in options.ts for the flags.
 * This is the command-line edge: it reads argv and the environment, writes to stdout/stderr and sets the
 * exit code; everything else is in run.ts.
 */

function write(line: string): void {
  process.stdout.write(`${line}\n`);
}

/**
 * The first Ctrl-C (or SIGTERM) asks the demo to stop: it cleans up (temporary files, its Redis keys) and
 * exits. A second one exits at once.
 */
function stopSignal(): AbortSignal {
  const controller = new AbortController();
  const stop = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(signal === 'SIGINT' ? 130 : 143);
    controller.abort();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return controller.signal;
}

async function main(): Promise<number> {
  let options;
  try {
    options = parseDemoArgs(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`${isCutoverError(err) ? `${err.code}: ` : ''}${(err as Error).message}\n`);
    return DemoExit.USAGE;
  }
  if (options.help) {
    write(DEMO_USAGE);
    return DemoExit.OK;
  }
  return runDemo(options, {
    out: write,
    progress: process.stderr,
    colour: process.stdout.isTTY === true && !process.env.NO_COLOR,
    signal: stopSignal(),
  });
}

process.exitCode = await main();
