import { randomBytes } from 'node:crypto';
import { visit, type Document } from 'yaml';

/** `${VAR}`, `${VAR:-default}`, and `$${` (a literal `${`). A default never spans lines. */
const REFERENCE = /\$?\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}\n]*))?\}/g;

interface Reference {
  name: string;
  fallback: string | undefined;
  line: number;
}

/**
 * `${VAR}` interpolation that cannot change a config's structure. Pasting values into the YAML text let a
 * value write YAML: `token: ${T}` with `T='secret, auth: false'` in a flow mapping turned authentication
 * off, a value with ` #` was cut short, a `,` put the value's tail into an error. Instead, each reference
 * becomes a placeholder word (valid in any YAML context: plain, quoted, flow or block) before parsing, and
 * the parsed document's scalars get the values: a value is always a value.
 *
 * A scalar that is exactly one unquoted reference takes the value's YAML core type (`partitions: ${N}`
 * with `N=6` is the number 6, `auth: ${A}` with `A=false` the boolean), never a collection; everything
 * else is a string. `$${` escapes a literal `${`. References in comments are ignored.
 */
export class EnvInterpolation {
  /** The config text with every reference replaced by its placeholder. */
  readonly text: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly refs: Reference[] = [];
  private readonly placeholder: RegExp;
  private readonly substituted = new Map<string, string>();

  constructor(text: string, env: NodeJS.ProcessEnv) {
    this.env = env;
    // A nonce per parse: no text written in a config file can collide with a placeholder.
    const nonce = randomBytes(6).toString('hex');
    this.placeholder = new RegExp(`__cutover_env_${nonce}_(\\d+)__`, 'g');
    this.text = text.replace(REFERENCE, (whole, name: string, hasDefault: string | undefined, fallback: string | undefined, offset: number) => {
      if (whole.startsWith('$$')) return whole.slice(1);
      this.refs.push({ name, fallback: hasDefault === undefined ? undefined : (fallback ?? ''), line: text.slice(0, offset).split('\n').length });
      return `__cutover_env_${nonce}_${this.refs.length - 1}__`;
    });
  }

  /**
   * Substitutes the values into the document's string scalars, keys included. An unset `${VAR}` without
   * default is reported by name and line, not silently emptied.
   */
  apply(doc: Document, onMissing: (name: string, line: number) => void): void {
    visit(doc, {
      Scalar: (_key, node) => {
        if (typeof node.value !== 'string' || !node.value.includes('__cutover_env_')) return;
        const whole = new RegExp(`^${this.placeholder.source}$`).exec(node.value);
        if (whole && node.type === 'PLAIN') {
          node.value = coreScalar(this.valueOf(Number(whole[1]), onMissing));
          return;
        }
        node.value = node.value.replace(this.placeholder, (_m, index: string) => this.valueOf(Number(index), onMissing));
      },
    });
  }

  /**
   * `message` with every substituted value replaced by its reference: a config error names the variable,
   * never echoes a secret (zod quotes some bad values). Values under 4 characters are left: they are not
   * secrets, and replacing them would mangle the message.
   */
  scrub(message: string): string {
    let out = message;
    const values = [...this.substituted].filter(([value]) => value.length >= 4).sort((a, b) => b[0].length - a[0].length);
    for (const [value, name] of values) out = out.split(value).join(`\${${name}}`);
    return out;
  }

  private valueOf(index: number, onMissing: (name: string, line: number) => void): string {
    const ref = this.refs[index]!;
    const value = this.env[ref.name];
    if (value !== undefined && value !== '') {
      this.substituted.set(value, ref.name);
      return value;
    }
    if (ref.fallback !== undefined) return ref.fallback;
    onMissing(ref.name, ref.line);
    return '';
  }
}

const INT = /^[-+]?(?:0|[1-9][0-9]*)$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/;

/** A value as YAML's core schema reads a plain scalar: null, boolean, number, else the string itself. */
function coreScalar(value: string): unknown {
  if (value === '' || value === '~' || /^(?:null|Null|NULL)$/.test(value)) return null;
  if (/^(?:true|True|TRUE)$/.test(value)) return true;
  if (/^(?:false|False|FALSE)$/.test(value)) return false;
  if (INT.test(value) || FLOAT.test(value)) return Number(value);
  return value;
}
