// Shard lists: brace expansion in the manner of Python's `braceexpand` (as webdataset uses
// it), lists of patterns separated by `::` or whitespace, and resolution against the disk.

import { existsSync, statSync } from 'node:fs';

import { BrokenInputLog } from './broken.js';

/** Why a shard is missing, with a hint when its name still holds a brace pattern. */
export function missingShardMessage(file: string): string {
  return /[{}]/.test(file)
    ? 'shard file does not exist (a brace pattern that does not expand, such as an unclosed ' +
      '{ or a range of non-numbers, is taken literally)'
    : 'shard file does not exist';
}

/**
 * Expands one pattern: `{a,b}` lists, `{000..639}` numeric ranges (zero padded to the
 * width of the bounds when either bound is written with leading zeros), `{0..10..2}` steps,
 * `{a..e}` letter ranges, nested braces, `\{` escapes.
 */
export function braceExpand(pattern: string): string[] {
  const group = findGroup(pattern);
  if (group === null) return [unescape(pattern)];

  const prefix = pattern.slice(0, group.start);
  const suffix = pattern.slice(group.end + 1);
  const body = pattern.slice(group.start + 1, group.end);
  const alternatives = expandBody(body);
  if (alternatives === null) {
    // Not a valid group: keep the braces literally and expand what follows.
    return braceExpand(suffix).map((rest) => unescape(prefix) + `{${body}}` + rest);
  }
  const tails = braceExpand(suffix);
  const out: string[] = [];
  for (const alternative of alternatives) {
    for (const expanded of braceExpand(prefix + alternative)) {
      for (const tail of tails) out.push(expanded + tail);
    }
  }
  return out;
}

/** Expands a shard list: one string (patterns separated by `::` or whitespace) or many. */
export function expandShardList(spec: string | readonly string[]): string[] {
  const patterns = typeof spec === 'string' ? [spec] : [...spec];
  const out: string[] = [];
  for (const entry of patterns) {
    for (const pattern of entry.split(/::|\s+/)) {
      if (pattern.length > 0) out.push(...braceExpand(pattern));
    }
  }
  return out;
}

export interface ResolvedShards {
  shards: string[];
  missing: string[];
}

/**
 * Expands a shard list and checks each file. A missing file is an error naming it, or,
 * when not strict, a `missingShard` warning and the file is skipped.
 */
export function resolveShards(
  spec: string | readonly string[],
  log: BrokenInputLog = new BrokenInputLog({ strict: true }),
): ResolvedShards {
  const shards: string[] = [];
  const missing: string[] = [];
  for (const file of expandShardList(spec)) {
    let ok = false;
    try {
      ok = existsSync(file) && statSync(file).isFile();
    } catch {
      ok = false;
    }
    if (ok) {
      shards.push(file);
    } else {
      missing.push(file);
      log.report({ kind: 'missingShard', file, message: missingShardMessage(file) });
    }
  }
  if (shards.length === 0 && missing.length === 0) {
    throw new Error(`resolveShards: the shard list ${JSON.stringify(spec)} names no file`);
  }
  return { shards, missing };
}

// ---------------------------------------------------------------- parsing helpers

interface Group {
  start: number;
  end: number;
}

/** The first top-level `{...}` group (unescaped), or null. */
function findGroup(pattern: string): Group | null {
  let depth = 0;
  let start = -1;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '\\') {
      i++;
      continue;
    }
    if (ch === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (ch === '}' && depth > 0) {
      depth--;
      if (depth === 0) return { start, end: i };
    }
  }
  return null;
}

/** Alternatives of a group body, or null when the body is neither a list nor a range. */
function expandBody(body: string): string[] | null {
  const range = expandRange(body);
  if (range !== null) return range;
  const items = splitTopLevel(body);
  if (items.length < 2) return null;
  return items;
}

function splitTopLevel(body: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let current = '';
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch === '\\' && i + 1 < body.length) {
      current += ch + body[i + 1];
      i++;
      continue;
    }
    if (ch === '{') depth++;
    if (ch === '}') depth--;
    if (ch === ',' && depth === 0) {
      items.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  items.push(current);
  return items;
}

function expandRange(body: string): string[] | null {
  const numeric = /^(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?$/.exec(body);
  if (numeric !== null) {
    const [, a, b, stepText] = numeric as unknown as [string, string, string, string?];
    const first = Number.parseInt(a, 10);
    const last = Number.parseInt(b, 10);
    const step = Math.abs(stepText === undefined ? 1 : Number.parseInt(stepText, 10)) || 1;
    const padded = /^-?0\d/.test(a) || /^-?0\d/.test(b);
    const width = padded ? Math.max(a.length, b.length) : 0;
    const out: string[] = [];
    const direction = first <= last ? 1 : -1;
    for (let v = first; direction > 0 ? v <= last : v >= last; v += direction * step) {
      const digits = String(Math.abs(v)).padStart(v < 0 ? width - 1 : width, '0');
      out.push(v < 0 ? `-${digits}` : digits);
    }
    return out;
  }
  const letters = /^([a-zA-Z])\.\.([a-zA-Z])(?:\.\.(-?\d+))?$/.exec(body);
  if (letters !== null) {
    const first = letters[1]!.charCodeAt(0);
    const last = letters[2]!.charCodeAt(0);
    const step = Math.abs(letters[3] === undefined ? 1 : Number.parseInt(letters[3], 10)) || 1;
    const direction = first <= last ? 1 : -1;
    const out: string[] = [];
    for (let c = first; direction > 0 ? c <= last : c >= last; c += direction * step) {
      out.push(String.fromCharCode(c));
    }
    return out;
  }
  return null;
}

function unescape(text: string): string {
  return text.replace(/\\([{},\\])/g, '$1');
}
