/**
 * A small command-line flag parser with Go/controller-runtime conventions: `--name=value`, `--name value`,
 * booleans as `--flag`, `--flag=true` or `--flag=false`. Unknown flags are errors that list the known ones.
 */

export interface FlagSpec {
  type: 'string' | 'boolean';
  default?: string | boolean;
  help: string;
}

export type FlagValues = Record<string, string | boolean | undefined>;

export class FlagError extends Error {}

export function parseFlags(args: string[], specs: Record<string, FlagSpec>): { flags: FlagValues; positional: string[] } {
  const flags: FlagValues = {};
  for (const [name, spec] of Object.entries(specs)) flags[name] = spec.default;
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const m = /^--?([^=]+)(?:=(.*))?$/s.exec(arg)!;
    const name = m[1]!;
    const spec = specs[name];
    if (!spec) throw new FlagError(`unknown flag --${name}; known flags: ${Object.keys(specs).map((f) => `--${f}`).join(', ')}`);
    if (spec.type === 'boolean') {
      const v = m[2];
      if (v === undefined || v === 'true') flags[name] = true;
      else if (v === 'false') flags[name] = false;
      else throw new FlagError(`--${name} takes true or false, not "${v}"`);
      continue;
    }
    const value = m[2] ?? args[++i];
    if (value === undefined) throw new FlagError(`--${name} needs a value`);
    flags[name] = value;
  }
  return { flags, positional };
}

export function flagHelp(specs: Record<string, FlagSpec>): string {
  return Object.entries(specs)
    .map(([name, s]) => {
      const def = s.default === undefined || s.default === '' ? '' : ` (default ${JSON.stringify(s.default)})`;
      return `  --${name}${s.type === 'string' ? ' VALUE' : ''}\n      ${s.help}${def}`;
    })
    .join('\n');
}
