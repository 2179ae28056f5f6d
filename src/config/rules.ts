// Small typed building blocks for checking plain data read from YAML. Each rule either returns
// the checked (and defaults-filled) value or records a problem at its path and returns INVALID,
// so that one pass reports every problem of a config at once.

export type PathSegment = string | number;
export type ConfigPath = readonly PathSegment[];

export interface ConfigProblem {
  path: ConfigPath;
  message: string;
}

export const INVALID: unique symbol = Symbol('invalid');
export type Invalid = typeof INVALID;

export type Rule<T> = (value: unknown, at: At) => T | Invalid;

/** Where a value sits in the config, and the list that collects problems. */
export class At {
  constructor(
    readonly path: ConfigPath,
    private readonly problems: ConfigProblem[],
  ) {}

  static root(problems: ConfigProblem[]): At {
    return new At([], problems);
  }

  child(segment: PathSegment): At {
    return new At([...this.path, segment], this.problems);
  }

  fail(message: string): Invalid {
    this.problems.push({ path: this.path, message });
    return INVALID;
  }

  /** A problem at this path that only makes sense once other fields were read. */
  failAt(segment: PathSegment | readonly PathSegment[], message: string): void {
    const tail = Array.isArray(segment) ? segment : [segment];
    this.problems.push({ path: [...this.path, ...tail], message });
  }
}

export function formatPath(path: ConfigPath): string {
  let text = '';
  for (const segment of path) {
    text += typeof segment === 'number' ? `[${segment}]` : text === '' ? segment : `.${segment}`;
  }
  return text === '' ? '(top level)' : text;
}

/** A value as it appears in an error message: short, and unambiguous about its type. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === 'object') return 'a mapping';
  return typeof value;
}

export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// scalars

interface NumberBounds {
  min?: number;
  max?: number;
  /** true: the value must be strictly greater than `min` */
  exclusiveMin?: boolean;
}

function boundsText(bounds: NumberBounds): string {
  const parts: string[] = [];
  if (bounds.min !== undefined) parts.push(`${bounds.exclusiveMin ? '>' : '>='} ${bounds.min}`);
  if (bounds.max !== undefined) parts.push(`<= ${bounds.max}`);
  return parts.length === 0 ? '' : ` ${parts.join(' and ')}`;
}

function inBounds(value: number, bounds: NumberBounds): boolean {
  if (bounds.min !== undefined) {
    if (bounds.exclusiveMin ? value <= bounds.min : value < bounds.min) return false;
  }
  return bounds.max === undefined || value <= bounds.max;
}

export function integer(bounds: NumberBounds = {}): Rule<number> {
  const expected = `an integer${boundsText(bounds)}`;
  return (value, at) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || !inBounds(value, bounds)) {
      return at.fail(`expected ${expected}, got ${show(value)}`);
    }
    return value;
  };
}

export function number(bounds: NumberBounds = {}): Rule<number> {
  const expected = `a number${boundsText(bounds)}`;
  return (value, at) => {
    if (typeof value !== 'number' || !Number.isFinite(value) || !inBounds(value, bounds)) {
      return at.fail(`expected ${expected}, got ${show(value)}`);
    }
    return value;
  };
}

export const boolean: Rule<boolean> = (value, at) => {
  if (typeof value !== 'boolean') return at.fail(`expected true or false, got ${show(value)}`);
  return value;
};

export function text(options: { nonEmpty?: boolean } = {}): Rule<string> {
  const expected = options.nonEmpty ? 'a non-empty string' : 'a string';
  return (value, at) => {
    if (typeof value !== 'string' || (options.nonEmpty && value === '')) {
      return at.fail(`expected ${expected}, got ${show(value)}`);
    }
    return value;
  };
}

export function oneOf<const T extends string>(choices: readonly T[]): Rule<T> {
  const expected = choices.map((c) => JSON.stringify(c)).join(', ');
  return (value, at) => {
    if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
      return at.fail(`expected one of ${expected}, got ${show(value)}`);
    }
    return value as T;
  };
}

// combinators

export function nullable<T>(rule: Rule<T>): Rule<T | null> {
  return (value, at) => (value === null ? null : rule(value, at));
}

export function listOf<T>(item: Rule<T>, options: { minLength?: number } = {}): Rule<T[]> {
  return (value, at) => {
    if (!Array.isArray(value)) return at.fail(`expected a list, got ${show(value)}`);
    const minLength = options.minLength ?? 0;
    if (value.length < minLength) {
      return at.fail(`expected a list of at least ${minLength}, got ${show(value)}`);
    }
    const out: T[] = [];
    let ok = true;
    value.forEach((element, index) => {
      const checked = item(element, at.child(index));
      if (checked === INVALID) ok = false;
      else out.push(checked);
    });
    return ok ? out : INVALID;
  };
}

/** Either the rule's own value or, as a convenience the reference also allows, a single one. */
export function listOrSingle<T>(item: Rule<T>): Rule<T[]> {
  const list = listOf(item, { minLength: 1 });
  return (value, at) => (Array.isArray(value) ? list(value, at) : list([value], at));
}

export interface FieldSpec<T> {
  rule: Rule<T>;
  /** Absent: the key is required. A function gets the fields read so far. */
  fallback?: { value: (partial: Record<string, unknown>) => T };
  /** true: an explicit null also takes the fallback (the reference's "null means default"). */
  nullTakesFallback?: boolean;
}

export function required<T>(rule: Rule<T>): FieldSpec<T> {
  return { rule };
}

export function optional<T>(rule: Rule<T>, fallback: T | ((partial: Record<string, unknown>) => T),
  options: { nullTakesFallback?: boolean } = {}): FieldSpec<T> {
  const value = typeof fallback === 'function'
    ? (fallback as (partial: Record<string, unknown>) => T)
    : () => structuredClone(fallback);
  return { rule, fallback: { value }, nullTakesFallback: options.nullTakesFallback };
}

export type Fields<T> = { [K in keyof T]-?: FieldSpec<T[K]> };

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** The known name closest to an unknown one, when it is close enough to be a likely typo. */
export function closest(name: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : null;
}

export function unknownKeyMessage(key: string, known: readonly string[]): string {
  const guess = closest(key, known);
  const hint = guess === null ? '' : `; did you mean "${guess}"?`;
  return `unknown key (known keys here: ${known.join(', ')})${hint}`;
}

/**
 * A mapping with exactly the given keys. Missing required keys, unknown keys and bad values are
 * all reported; `check` runs afterwards on a complete value for rules that involve several keys.
 */
export function record<T>(fields: Fields<T>, check?: (value: T, at: At) => void): Rule<T> {
  return recordWith(fields, check === undefined ? undefined : (value, at, complete) => {
    if (complete) check(value as T, at);
  });
}

/**
 * As `record`, but `check` also sees the fields that did pass when others failed (`complete`
 * false), so that rules between sections still report alongside problems inside a section.
 */
export function recordWith<T>(fields: Fields<T>,
  check?: (value: Partial<T>, at: At, complete: boolean) => void): Rule<T> {
  const known = Object.keys(fields);
  return (value, at) => {
    if (!isMapping(value)) {
      return at.fail(`expected a mapping with keys ${known.join(', ')}, got ${show(value)}`);
    }
    const out: Record<string, unknown> = {};
    let ok = true;

    for (const key of Object.keys(value)) {
      if (!known.includes(key)) {
        at.failAt(key, unknownKeyMessage(key, known));
        ok = false;
      }
    }

    const pending: string[] = [];
    for (const key of known) {
      const spec = (fields as Record<string, FieldSpec<unknown>>)[key];
      const raw = value[key];
      const absent = raw === undefined || (raw === null && spec.nullTakesFallback === true);
      if (absent) {
        if (spec.fallback === undefined) {
          at.failAt(key, 'missing (required)');
          ok = false;
        } else {
          pending.push(key);
        }
        continue;
      }
      const checked = spec.rule(raw, at.child(key));
      if (checked === INVALID) ok = false;
      else out[key] = checked;
    }

    for (const key of pending) {
      out[key] = (fields as Record<string, FieldSpec<unknown>>)[key].fallback!.value(out);
    }
    // declaration order, whichever keys were given, so that written configs read alike
    const ordered = Object.fromEntries(known.filter((k) => k in out).map((k) => [k, out[k]]));
    check?.(ordered as Partial<T>, at, ok);
    return ok ? (ordered as T) : INVALID;
  };
}

/** An optional section whose default is the section's rule applied to an empty mapping. */
export function optionalSection<T>(rule: Rule<T>): FieldSpec<T> {
  return {
    rule,
    fallback: { value: () => rule({}, At.root([])) as T },
    nullTakesFallback: true,
  };
}

type ArgsOf<T, K> = T extends { type: K; args: infer A } ? A : never;

/** The reference's `{type: Name, args: {...}}` shape: `type` picks the rule for `args`. */
export function typed<T extends { type: string; args: unknown }>(
  variants: { [K in T['type']]: Rule<ArgsOf<T, K>> },
): Rule<T> {
  const names = Object.keys(variants);
  return (value, at) => {
    if (!isMapping(value)) {
      return at.fail(`expected a mapping with "type" and "args", got ${show(value)}`);
    }
    let ok = true;
    for (const key of Object.keys(value)) {
      if (key !== 'type' && key !== 'args') {
        at.failAt(key, unknownKeyMessage(key, ['type', 'args']));
        ok = false;
      }
    }
    const type = value.type;
    if (type === undefined) {
      at.failAt('type', `missing (required; one of ${names.join(', ')})`);
      return INVALID;
    }
    if (typeof type !== 'string' || !names.includes(type)) {
      const guess = typeof type === 'string' ? closest(type, names) : null;
      const hint = guess === null ? '' : `; did you mean "${guess}"?`;
      at.failAt('type', `expected one of ${names.join(', ')}, got ${show(type)}${hint}`);
      return INVALID;
    }
    const argsRule = (variants as Record<string, Rule<unknown>>)[type];
    const args = argsRule(value.args ?? {}, at.child('args'));
    if (args === INVALID || !ok) return INVALID;
    return { type, args } as unknown as T;
  };
}
