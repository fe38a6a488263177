import { execFile } from 'node:child_process';
import { rabbitmqctlArgs, type RabbitPermissions } from '../../acl/rabbitmq.js';
import { BusError, ErrorCodes } from '../../errors.js';

/** rabbitmqctl's exit codes (sysexits) for a user and a vhost that do not exist. */
const NO_USER = 67;
const UNAVAILABLE = 69;

function run(command: string, args: string[]): Promise<{ code: number | string | null; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      resolve({ code: e ? (e.code ?? null) : 0, output: `${stderr}${stdout}`.trim() });
    });
  });
}

/**
 * Sets each identity's permissions with `rabbitmqctl` (on PATH, or `command`), on the broker's host or
 * with `node` (`-n`) naming a node its Erlang cookie reaches. Users belong to the operator: one that does
 * not exist is an error, never created. Setting permissions replaces the identity's previous ones, so
 * applying twice is safe. Returns the number of identities set.
 */
export async function applyRabbitmqPermissions(permissions: readonly RabbitPermissions[], options: { node?: string | undefined; command?: string } = {}): Promise<number> {
  const command = options.command ?? 'rabbitmqctl';
  const node = options.node === undefined ? [] : ['-n', options.node];
  for (const p of permissions) {
    for (const args of rabbitmqctlArgs(p)) {
      const { code, output } = await run(command, [...node, ...args]);
      if (code === 0) continue;
      const what = `${command} ${args[0]} for user ${p.identity} in vhost ${p.vhost}`;
      if (code === 'ENOENT') throw new BusError(ErrorCodes.BUS_MISCONFIGURED, `${command}: not found on PATH; run cutover acl --apply where rabbitmqctl can reach the broker's node, or run the printed lines there`);
      if (code === NO_USER) throw new BusError(ErrorCodes.BUS_REJECTED, `${what}: user ${p.identity} does not exist; create it first (rabbitmqctl add_user ${p.identity} <password>): cutover sets permissions only (${output})`);
      if (code === UNAVAILABLE && /virtual host/i.test(output)) throw new BusError(ErrorCodes.BUS_REJECTED, `${what}: vhost ${p.vhost} (from bus.url) does not exist (${output})`);
      throw new BusError(ErrorCodes.BUS_UNAVAILABLE, `${what} failed with exit code ${String(code)}: ${output}`);
    }
  }
  return permissions.length;
}
