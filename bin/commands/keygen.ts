import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { CutoverError, ErrorCodes } from '../../src/errors.js';
import { ExitCode, parseCommandArgs, usageError, type CliIo, type CommandDeps } from '../io.js';

export const KEYGEN_USAGE = `usage: cutover keygen --agent NAME --key-id ID [--out FILE]

  makes an Ed25519 signing key for agent identity. Prints the private key (PEM PKCS#8), or writes it to
  FILE (mode 0600) with --out, then the config snippets: identity: for the agent, trust: for its consumers`;

/** `cutover keygen`: a new Ed25519 key pair and the config that uses it. */
export async function keygenCommand(argv: string[], io: CliIo, _deps: CommandDeps = {}): Promise<number> {
  const { values } = parseCommandArgs(
    argv,
    { agent: { type: 'string' }, 'key-id': { type: 'string' }, out: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } },
    KEYGEN_USAGE,
  );
  if (values.help) {
    io.out(KEYGEN_USAGE);
    return ExitCode.OK;
  }
  const agent = values.agent;
  const keyId = values['key-id'];
  if (!agent || !/^[a-z0-9][a-z0-9_-]*$/.test(agent)) throw usageError('keygen needs --agent NAME (lowercase, like inventory)', KEYGEN_USAGE);
  if (!keyId || !/^[A-Za-z0-9._-]{1,64}$/.test(keyId)) throw usageError('keygen needs --key-id ID (letters, digits, dot, dash, underscore)', KEYGEN_USAGE);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  if (values.out) {
    try {
      // `wx`: never overwrite a key that may still be in use.
      writeFileSync(values.out, privateKey, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      throw new CutoverError(ErrorCodes.USAGE, `--out ${values.out}: cannot create the key file (${(err as Error).message})`, { cause: err });
    }
    io.out(`# private key written to ${values.out} (mode 0600)`);
    io.out(`identity:\n  agent: ${agent}\n  keyId: ${keyId}\n  privateKeyFile: ${values.out}\n`);
  } else {
    io.out(privateKey.trimEnd());
    io.out(`\n# identity: for ${agent} (keep the private key above secret, e.g. in SIGNING_KEY)\nidentity:\n  agent: ${agent}\n  keyId: ${keyId}\n  privateKey: "\${SIGNING_KEY}"\n`);
  }
  io.out(`# trust: for every consumer of ${agent}'s events\ntrust:\n  agents:\n    ${agent}:\n      - keyId: ${keyId}\n        publicKey: |\n${indent(publicKey.trimEnd(), 10)}`);
  return ExitCode.OK;
}

function indent(text: string, spaces: number): string {
  return text
    .split('\n')
    .map((l) => ' '.repeat(spaces) + l)
    .join('\n');
}
