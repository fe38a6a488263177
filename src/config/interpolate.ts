/**
 * Replaces `${VAR}` and `${VAR:-default}` in config text with environment values. `$${` escapes a literal
 * `${`. A `${VAR}` without default whose variable is unset is reported, not silently emptied.
 */
export function interpolate(text: string, env: NodeJS.ProcessEnv, onMissing: (name: string, line: number) => void): string {
  return text.replace(/\$?\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}/g, (whole, name: string, hasDefault: string | undefined, fallback: string | undefined, offset: number) => {
    if (whole.startsWith('$$')) return whole.slice(1);
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (hasDefault !== undefined) return fallback ?? '';
    onMissing(name, text.slice(0, offset).split('\n').length);
    return '';
  });
}
