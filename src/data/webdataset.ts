// WebDataset conventions: consecutive tar members sharing a key form one sample; the key
// is the member name up to the first dot of its base name, the rest (lower-cased) is the
// field. Images stay encoded until the view pipeline decodes them.

import { missingShardMessage } from './brace.js';
import { BrokenInputLog, errorMessage } from './broken.js';
import { unpickle, type PyValue } from './pyd.js';
import { readTar, TarFormatError, type TarEntry } from './tar.js';

export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp'] as const;

/** One sample as stored: its key, its shard, and the raw bytes of each field. */
export interface RawSample {
  key: string;
  /** Where it came from, for messages: the shard path (or the image file). */
  source: string;
  fields: Map<string, Uint8Array>;
}

/** Splits a member name into key and field; null for names without a dot. */
export function splitMemberName(name: string): { key: string; field: string } | null {
  const slash = name.lastIndexOf('/');
  const dot = name.indexOf('.', slash + 1);
  if (dot <= slash + 1 || dot === name.length - 1) return null;
  return { key: name.slice(0, dot), field: name.slice(dot + 1).toLowerCase() };
}

/** Groups consecutive tar members into samples. */
export async function* groupMembers(
  entries: AsyncIterable<TarEntry>,
  source: string,
): AsyncGenerator<RawSample> {
  let current: RawSample | null = null;
  try {
    for await (const entry of entries) {
      const base = entry.name.slice(entry.name.lastIndexOf('/') + 1);
      if (base.startsWith('__') && base.endsWith('__')) continue;
      const parts = splitMemberName(entry.name);
      if (parts === null) continue;
      if (current !== null && current.key !== parts.key) {
        yield current;
        current = null;
      }
      current ??= { key: parts.key, source, fields: new Map() };
      current.fields.set(parts.field, entry.data);
    }
  } catch (error) {
    // Cut short: the sample being read is complete only if the cut member has another key.
    if (error instanceof TarFormatError && current !== null && error.memberName !== null &&
        splitMemberName(error.memberName)?.key !== current.key) {
      yield current;
    }
    throw error;
  }
  if (current !== null) yield current;
}

export interface ShardReadOptions {
  /** Keep only samples whose index i in the shard has i % mod === rem. */
  mod?: number;
  rem?: number;
}

/**
 * Streams the samples of one shard. A missing shard is reported as `missingShard`; a
 * shard cut short as `truncatedTar` (the samples before the cut are kept, the one being
 * read at the cut is dropped).
 */
export async function* readShardSamples(
  shard: string,
  log: BrokenInputLog,
  options: ShardReadOptions = {},
): AsyncGenerator<RawSample> {
  const mod = options.mod ?? 1;
  const rem = options.rem ?? 0;
  let index = 0;
  try {
    // groupMembers yields a sample once the next key starts or the shard ends, so a sample
    // cut by truncation is never emitted.
    for await (const sample of groupMembers(readTar(shard), shard)) {
      if (index % mod === rem) yield sample;
      index++;
    }
  } catch (error) {
    if (error instanceof TarFormatError) {
      log.report({ kind: 'truncatedTar', file: shard, message: error.detail });
      return;
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      log.report({ kind: 'missingShard', file: shard, message: missingShardMessage(shard) });
      return;
    }
    if (code !== undefined) {
      log.report({ kind: 'unreadableFile', file: shard, message: errorMessage(error) });
      return;
    }
    throw error;
  }
}

/** Decodes a non-image field by its extension: cls/id/index, json, txt, pyd/pickle. */
export function decodeField(field: string, data: Uint8Array): unknown {
  const ext = field.slice(field.lastIndexOf('.') + 1);
  const text = (): string => new TextDecoder().decode(data);
  switch (ext) {
    case 'cls':
    case 'cls2':
    case 'index':
    case 'inx':
    case 'id':
      return Number.parseInt(text().trim(), 10);
    case 'json':
    case 'jsn':
      return JSON.parse(text()) as unknown;
    case 'txt':
    case 'text':
      return text();
    case 'pyd':
    case 'pickle':
      return unpickle(data);
    default:
      return data;
  }
}

/** The first image field of a sample (jpg, jpeg, png, webp, possibly prefixed: `image.jpg`). */
export function sampleImage(sample: RawSample): { field: string; data: Uint8Array } | null {
  for (const [field, data] of sample.fields) {
    const ext = field.slice(field.lastIndexOf('.') + 1);
    if ((IMAGE_EXTENSIONS as readonly string[]).includes(ext)) return { field, data };
  }
  return null;
}

/**
 * The class label of a sample: the `cls` field, else `cls` of a pickled (`*.pyd`) or JSON
 * metadata field. Null when there is none or it is not an integer.
 */
export function sampleLabel(sample: RawSample): number | null {
  const cls = sample.fields.get('cls');
  if (cls !== undefined) {
    const value = decodeField('cls', cls) as number;
    return Number.isInteger(value) ? value : null;
  }
  for (const [field, data] of sample.fields) {
    const ext = field.slice(field.lastIndexOf('.') + 1);
    if (ext !== 'pyd' && ext !== 'pickle' && ext !== 'json') continue;
    let meta: unknown;
    try {
      meta = decodeField(field, data);
    } catch {
      continue;
    }
    const value = (meta as { [key: string]: PyValue } | null)?.cls;
    if (typeof value === 'number' && Number.isInteger(value)) return value;
    if (typeof value === 'bigint') return Number(value);
  }
  return null;
}
