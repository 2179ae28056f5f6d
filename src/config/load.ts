// Reading configs from YAML, laying a config over a run's config (as the reference does when
// resuming), command-line overrides, and writing the resolved config back as YAML.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import {
  Document, LineCounter, isAlias, isMap, isScalar, isSeq, parse, parseDocument, visit,
} from 'yaml';
import type { Node } from 'yaml';
import { isMapping, show } from './rules.js';
import type { ConfigPath, PathSegment } from './rules.js';
import type { ConfigPurpose, EvalConfig, PretrainConfig } from './schema.js';
import { ConfigError, checkConfig } from './validate.js';
import type { LocatedProblem } from './validate.js';

type AnyConfig = PretrainConfig | EvalConfig;

/** A config's plain value, where it came from, and how to find a path in its text. */
export interface ConfigDocument {
  source: string;
  value: Record<string, unknown>;
  /** `source:line:col` of a path (or of its nearest ancestor present), null when unknown. */
  locate: (path: ConfigPath) => string | null;
}

function singleProblem(where: string, message: string): ConfigError {
  return new ConfigError(where, [{ path: [], where, message }]);
}

function firstLine(message: string): string {
  return message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
}

function nodeLocator(doc: Document, lines: LineCounter, source: string) {
  return (path: ConfigPath): string | null => {
    let node: unknown = doc.contents;
    let offset = (node as Node | null)?.range?.[0];
    for (const segment of path) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && p.key.value === segment);
        if (pair === undefined) break;
        offset = (pair.key as Node).range?.[0] ?? offset;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
        node = node.items[segment];
        offset = (node as Node).range?.[0] ?? offset;
      } else {
        break;
      }
    }
    if (offset === undefined) return null;
    const { line, col } = lines.linePos(offset);
    return `${source}:${line}:${col}`;
  };
}

/** Parses YAML text; syntax errors name the source, line and column, all of them at once. */
export function parseConfigText(text: string, source: string): ConfigDocument {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true });
  const problems: LocatedProblem[] = [...doc.errors, ...doc.warnings].map((error) => {
    const pos = error.linePos?.[0];
    return {
      path: [],
      message: `YAML syntax error: ${firstLine(error.message)}`,
      where: pos === undefined ? source : `${source}:${pos.line}:${pos.col}`,
    };
  });
  if (problems.length > 0) throw new ConfigError(source, problems);

  const value: unknown = doc.toJS({ maxAliasCount: 1000 });
  if (!isMapping(value)) {
    const got = value === null || value === undefined ? 'an empty document' : show(value);
    throw singleProblem(source, `expected a mapping of config sections, got ${got}`);
  }
  return { source, value, locate: nodeLocator(doc, lines, source) };
}

export function readConfigFile(file: string): ConfigDocument {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw singleProblem(file, `cannot read the file (${reason})`);
  }
  return parseConfigText(text, file);
}

/**
 * Plain objects and arrays from what a checkpoint's unpickled `config` holds: dicts come as Maps
 * (string keys only in a config), tuples as arrays, big integers as bigint.
 */
function plainData(value: unknown, source: string, path: string): unknown {
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of value) {
      if (typeof key !== 'string') {
        const where = path || 'the config';
        throw singleProblem(source, `${where}: expected string keys, got ${show(key)}`);
      }
      out[key] = plainData(item, source, path ? `${path}.${key}` : key);
    }
    return out;
  }
  if (Array.isArray(value)) {
    return Array.from(value, (item, i) => plainData(item, source, `${path}[${i}]`));
  }
  if (typeof value === 'bigint' && Number.isSafeInteger(Number(value))) return Number(value);
  if (isMapping(value) && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value)
      .map(([key, item]) => [key, plainData(item, source, path ? `${path}.${key}` : key)]));
  }
  return value;
}

/** A config that has no text of its own, e.g. the `config` entry of a checkpoint. */
export function configFromValue(value: unknown, source: string): ConfigDocument {
  const plain = plainData(value, source, '');
  if (!isMapping(plain)) {
    throw singleProblem(source, `expected a mapping of config sections, got ${show(plain)}`);
  }
  return { source, value: plain, locate: () => null };
}

// overrides

export interface ConfigOverride {
  path: PathSegment[];
  value: unknown;
  /** What set it, for error messages: `--epochs`, `--set trainer.log_step=10`. */
  origin: string;
}

/**
 * `a.b.0.c=value`: a dotted path (numbers index lists) and a value read as YAML, so
 * `trainer.save_period=null`, `evaluator.0.args.k=[1, 20]` and `name=run1` all work.
 */
export function parseOverride(assignment: string, origin = `--set ${assignment}`): ConfigOverride {
  const equals = assignment.indexOf('=');
  if (equals <= 0) {
    throw singleProblem(origin, `expected key.path=value, got ${JSON.stringify(assignment)}`);
  }
  const keyText = assignment.slice(0, equals).trim();
  const segments = keyText.split('.');
  if (segments.some((s) => s === '')) {
    throw singleProblem(origin,
      `expected a dotted key such as trainer.epochs, got ${JSON.stringify(keyText)}`);
  }
  let value: unknown;
  try {
    value = parse(assignment.slice(equals + 1));
  } catch (error) {
    const reason = firstLine((error as Error).message);
    throw singleProblem(origin, `cannot read the value as YAML: ${reason}`);
  }
  const path = segments.map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  return { path, value: value === undefined ? null : value, origin };
}

/** A copy of `raw` with each override set in turn; missing mappings on the way are created. */
export function applyOverrides(raw: Record<string, unknown>,
  overrides: readonly ConfigOverride[]): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const { path, value, origin } of overrides) {
    let node: unknown = out;
    for (let i = 0; i < path.length; i++) {
      const segment = path[i];
      const last = i === path.length - 1;
      const here = path.slice(0, i).join('.') || 'the config';
      if (Array.isArray(node)) {
        if (typeof segment !== 'number' || segment >= node.length) {
          throw singleProblem(origin, `${here} is a list of ${node.length}; expected an index `
            + `below ${node.length}, got ${JSON.stringify(segment)}`);
        }
      } else if (!isMapping(node)) {
        throw singleProblem(origin,
          `${here} is ${show(node)}, not a mapping or list to set a key in`);
      }
      const container = node as Record<PathSegment, unknown>;
      if (last) {
        container[segment] = structuredClone(value);
      } else {
        const next = container[segment];
        if (next === undefined || next === null) container[segment] = {};
        node = container[segment];
      }
    }
  }
  return out;
}

// loading

export interface LoadConfigOptions {
  /** The config file given with -c; null when resuming without one. */
  file?: string | null;
  /** The config of the run being resumed or evaluated; the file's top-level keys replace its. */
  base?: ConfigDocument | null;
  overrides?: readonly ConfigOverride[];
  /** --name; otherwise the file's base name, otherwise the base config's name. */
  name?: string | null;
}

function startsWith(path: ConfigPath, prefix: ConfigPath): boolean {
  return prefix.length <= path.length && prefix.every((segment, i) => path[i] === segment);
}

export function loadConfig(purpose: 'pretrain', options: LoadConfigOptions): PretrainConfig;
export function loadConfig(purpose: 'eval', options: LoadConfigOptions): EvalConfig;
export function loadConfig(purpose: ConfigPurpose, options: LoadConfigOptions): AnyConfig;
export function loadConfig(purpose: ConfigPurpose, options: LoadConfigOptions): AnyConfig {
  const file = options.file ? readConfigFile(options.file) : null;
  const base = options.base ?? null;
  const documents = [base, file].filter((d): d is ConfigDocument => d !== null);
  if (documents.length === 0) {
    throw singleProblem('command line',
      'no config given: pass one with -c (or resume a run that has one)');
  }
  const source = documents.map((d) => d.source).join(' + ');

  // the reference's dict.update: a key of the file replaces the base's whole section
  let merged: Record<string, unknown> = Object.assign({}, ...documents.map((d) => d.value));
  const overrides = options.overrides ?? [];
  merged = applyOverrides(merged, overrides);

  if (options.name) merged.name = options.name;
  else if (options.file) merged.name = basename(options.file, extname(options.file));

  const locate = (path: ConfigPath): string => {
    const override = [...overrides].reverse().find((o) => startsWith(path, o.path));
    if (override !== undefined) return override.origin;
    const owner = [...documents].reverse().find((d) => path.length > 0 && path[0] in d.value);
    // a key that only an override brought in (`--set nonexistent.key=3`)
    const creator = [...overrides].reverse().find((o) => startsWith(o.path, path));
    if (owner === undefined && creator !== undefined) return creator.origin;
    return owner?.locate(path) ?? owner?.source ?? source;
  };

  const { config, problems } = checkConfig(merged, purpose);
  if (config === null) {
    throw new ConfigError(source, problems.map((p) => ({ ...p, where: locate(p.path) })));
  }
  return config;
}

// writing

export function configToYaml(config: AnyConfig): string {
  const doc = new Document(config);
  // lists of plain values on one line, as the reference's files write them: k: [1, 20]
  visit(doc, {
    Seq(_, node) {
      if (node.items.every((item) => isScalar(item))) node.flow = true;
    },
  });
  doc.commentBefore = ' Resolved by groco: every default filled in. Runs again as it is.';
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/** Writes through a temporary file renamed into place, so a reader never sees half a file. */
export function writeConfigYaml(config: AnyConfig, file: string): void {
  const temporary = `${file}.tmp-${process.pid}`;
  writeFileSync(temporary, configToYaml(config));
  renameSync(temporary, file);
}
