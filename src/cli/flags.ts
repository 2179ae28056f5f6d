// A small declarative flag parser: each command lists its flags and positional arguments, and
// gets back checked values plus a help text generated from the same list. In flag names `_` and
// `-` are the same character, so the reference's `--init_val` and torchrun's `--nproc_per_node`
// work beside `--init-val` and `--nproc-per-node`.

import { UsageError } from './usage_error.js';

export type FlagValue =
  | { kind: 'string' }
  | { kind: 'int'; min?: number; max?: number }
  | { kind: 'choice'; choices: readonly string[] };

export interface FlagSpec {
  /** Long name, hyphenated, without dashes: `save-dir`. */
  name: string;
  short?: string;
  /** Absent: a switch that takes no value. */
  value?: FlagValue;
  /** Shown in help: `FILE`, `N`. */
  valueName?: string;
  help: string;
  repeatable?: boolean;
  required?: boolean;
}

export interface PositionalSpec {
  name: string;
  help: string;
  required: boolean;
}

export interface CommandSpec {
  /** As typed after `groco`: `pretrain`, `preprocess imagenet`. */
  name: string;
  summary: string;
  usage: string;
  description?: string;
  flags: readonly FlagSpec[];
  positionals?: readonly PositionalSpec[];
  /** true: the first positional and everything after it are handed over untouched (launch). */
  restAfterPositional?: boolean;
  examples?: readonly string[];
}

export type ParsedValue = string | number | boolean;

export interface ParsedFlags {
  /** Keyed by the flag's long name; repeatable flags hold every value in order. */
  values: Map<string, ParsedValue | ParsedValue[]>;
  positionals: string[];
  rest: string[];
}

/**
 * Whether -h/--help appears among the command's own options (before `--`, and for a command
 * that hands the rest over, before that rest begins), whatever else the line holds.
 */
export function isHelpRequest(spec: CommandSpec, argv: readonly string[]): boolean {
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (token === '--') return false;
    if (token === '-h' || token === '--help') return true;
    if (!token.startsWith('-')) {
      if (spec.restAfterPositional) return false;
      continue;
    }
    const name = normalise(token.replace(/^--?/, '').split('=')[0]);
    const flag = spec.flags.find((f) => f.name === name || f.short === name);
    if (flag?.value !== undefined && !token.includes('=')) i++;
  }
  return false;
}

function normalise(name: string): string {
  return name.replace(/_/g, '-');
}

function flagLabel(spec: FlagSpec): string {
  return spec.short ? `-${spec.short}/--${spec.name}` : `--${spec.name}`;
}

function expectation(value: FlagValue): string {
  switch (value.kind) {
    case 'string':
      return 'a value';
    case 'choice':
      return `one of ${value.choices.join(', ')}`;
    case 'int': {
      const bounds: string[] = [];
      if (value.min !== undefined) bounds.push(`>= ${value.min}`);
      if (value.max !== undefined) bounds.push(`<= ${value.max}`);
      return `an integer${bounds.length ? ` ${bounds.join(' and ')}` : ''}`;
    }
  }
}

function convert(value: FlagValue, text: string, command: string, written: string): ParsedValue {
  const fail = () => new UsageError(
    `${written}: expected ${expectation(value)}, got ${JSON.stringify(text)}`, command, written);
  switch (value.kind) {
    case 'string':
      if (text === '') throw fail();
      return text;
    case 'choice':
      if (!value.choices.includes(text)) throw fail();
      return text;
    case 'int': {
      if (!/^[+-]?\d+$/.test(text)) throw fail();
      const n = Number(text);
      if (!Number.isSafeInteger(n)) throw fail();
      if (value.min !== undefined && n < value.min) throw fail();
      if (value.max !== undefined && n > value.max) throw fail();
      return n;
    }
  }
}

function suggestion(name: string, spec: CommandSpec): string {
  const known = spec.flags.map((f) => f.name);
  const close = known.find((k) => k.startsWith(name) || name.startsWith(k));
  return close === undefined ? '' : ` (did you mean --${close}?)`;
}

export function parseFlags(spec: CommandSpec, argv: readonly string[]): ParsedFlags {
  const values = new Map<string, ParsedValue | ParsedValue[]>();
  const positionals: string[] = [];
  const rest: string[] = [];
  const byLong = new Map(spec.flags.map((f) => [f.name, f]));
  const byShort = new Map(spec.flags.filter((f) => f.short).map((f) => [f.short as string, f]));
  const command = spec.name;

  const store = (flag: FlagSpec, value: ParsedValue, written: string) => {
    if (flag.repeatable) {
      const list = (values.get(flag.name) as ParsedValue[] | undefined) ?? [];
      list.push(value);
      values.set(flag.name, list);
      return;
    }
    if (values.has(flag.name)) {
      throw new UsageError(`${written} given more than once`, command, written);
    }
    values.set(flag.name, value);
  };

  let onlyPositionals = false;
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    const positional = onlyPositionals || token === '-' || !token.startsWith('-');
    if (positional && spec.restAfterPositional) {
      rest.push(...argv.slice(i));
      break;
    }
    if (positional) {
      positionals.push(token);
      continue;
    }
    if (token === '--') {
      onlyPositionals = true;
      continue;
    }

    let flag: FlagSpec | undefined;
    let inline: string | undefined;
    let written: string;
    if (token.startsWith('--')) {
      const equals = token.indexOf('=');
      const name = normalise(equals < 0 ? token.slice(2) : token.slice(2, equals));
      inline = equals < 0 ? undefined : token.slice(equals + 1);
      written = `--${name}`;
      flag = byLong.get(name);
      if (flag === undefined) {
        const hint = suggestion(name, spec);
        throw new UsageError(`unknown option ${token.split('=')[0]}${hint}`, command, written);
      }
    } else {
      written = token;
      flag = token.length === 2 ? byShort.get(token[1]) : undefined;
      if (flag === undefined) throw new UsageError(`unknown option ${token}`, command, token);
    }

    if (flag.value === undefined) {
      if (inline !== undefined) throw new UsageError(`${written} takes no value`, command, written);
      store(flag, true, written);
      continue;
    }
    let text = inline;
    if (text === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) {
        const expected = expectation(flag.value);
        throw new UsageError(`${written}: expected ${expected} after it, got nothing`,
          command, written);
      }
      text = next;
      i++;
    }
    store(flag, convert(flag.value, text, command, written), written);
  }

  for (const flag of spec.flags) {
    if (flag.required && !values.has(flag.name)) {
      throw new UsageError(`${flagLabel(flag)} is required`, command, `--${flag.name}`);
    }
  }
  const allowed = spec.positionals ?? [];
  if (!spec.restAfterPositional) {
    allowed.forEach((p, index) => {
      if (p.required && positionals[index] === undefined) {
        throw new UsageError(`missing argument <${p.name}>`, command, p.name);
      }
    });
    if (positionals.length > allowed.length) {
      const extra = positionals[allowed.length];
      throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`, command, extra);
    }
  }
  return { values, positionals, rest };
}

// help

function wrap(text: string, width: number, indent: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && line.length + 1 + word.length > width - indent) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

function table(rows: [string, string][]): string[] {
  const left = Math.min(30, Math.max(...rows.map(([l]) => l.length)) + 2);
  const out: string[] = [];
  for (const [label, help] of rows) {
    const helpLines = wrap(help, 98, 2 + left);
    if (label.length + 2 > left) {
      out.push(`  ${label}`);
      for (const h of helpLines) out.push(`${' '.repeat(2 + left)}${h}`);
    } else {
      out.push(`  ${label.padEnd(left)}${helpLines[0] ?? ''}`);
      for (const h of helpLines.slice(1)) out.push(`${' '.repeat(2 + left)}${h}`);
    }
  }
  return out;
}

export function helpText(spec: CommandSpec): string {
  const lines = [`Usage: ${spec.usage}`, '', ...wrap(spec.description ?? spec.summary, 98, 0)];
  if (spec.positionals && spec.positionals.length > 0) {
    lines.push('', 'Arguments:', ...table(spec.positionals.map((p) => [`<${p.name}>`, p.help])));
  }
  const rows: [string, string][] = spec.flags.map((f) => {
    const names = f.short ? `-${f.short}, --${f.name}` : `    --${f.name}`;
    const value = f.value === undefined ? '' : ` ${f.valueName ?? 'VALUE'}`;
    const notes = [f.required ? 'required' : '', f.repeatable ? 'repeatable' : ''].filter((n) => n);
    return [`${names}${value}`, notes.length ? `${f.help} (${notes.join(', ')})` : f.help];
  });
  rows.push(['-h, --help', 'show this help']);
  lines.push('', 'Options:', ...table(rows));
  if (spec.examples && spec.examples.length > 0) {
    lines.push('', 'Examples:', ...spec.examples.map((e) => `  ${e}`));
  }
  return `${lines.join('\n')}\n`;
}
