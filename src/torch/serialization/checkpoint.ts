// Reading and writing PyTorch checkpoints (.pth): the zip format of torch.save since 1.6 and the
// legacy format before it (or with `_use_new_zipfile_serialization=False`).
//
// Values come out as described in values.ts; tensors as TensorRecord, storages as StorageRecord
// (see tensor_record.ts). Dicts are Maps in the file's key order.

import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { Buffer, constants as bufferConstants } from 'node:buffer';
import { open, rename, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { SerializationError } from './errors.js';
import { unpickle } from './pickle_reader.js';
import type { PickleLimits } from './pickle_reader.js';
import { pickle } from './pickle_writer.js';
import { DTYPE_ITEM_SIZE } from './tensor_record.js';
import type { StorageRecord } from './tensor_record.js';
import {
  pidString,
  storageDType,
  storageNumelFromData,
  StorageWriter,
  torchGlobals,
} from './torch_pickle.js';
import { concatBytes, isZip, zipChunks, ZipReader } from './zip.js';
import { describePyValue, PyTuple } from './values.js';

export interface ReadCheckpointOptions {
  /** Bounds on the pickled part (defaults in DEFAULT_PICKLE_LIMITS). */
  limits?: Partial<PickleLimits>;
  /** Check the CRC-32 of zip records (default true). */
  verifyCrc?: boolean;
  /** Total bytes that deflated zip records may inflate to (default 4 GiB). */
  maxInflatedBytes?: number;
  /**
   * Copy a storage whose bytes do not start at a multiple of its item size, so that typed-array
   * views of `data` always work (default true). Zip checkpoints are aligned already; legacy
   * ones mostly are not.
   */
  alignStorages?: boolean;
  /**
   * Let the reader move bytes inside the input to align legacy storages in place instead of
   * copying them (readCheckpointFile does, as the buffer is its own). The input must not be
   * used afterwards, except through the returned value.
   */
  mayModifyInput?: boolean;
}

export interface WriteCheckpointOptions {
  /** The folder name inside the zip archive (default 'archive', as torch.save to a buffer). */
  archiveName?: string;
  /** Write zip64 records even for small files. */
  forceZip64?: boolean;
}

/** The format of a checkpoint's bytes. */
export type CheckpointFormat = 'zip' | 'legacy';

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
const EMPTY = new Uint8Array(0);

/** Which format the bytes are in, judging by their first bytes (legacy for anything not zip). */
export function checkpointFormat(bytes: Uint8Array): CheckpointFormat {
  return isZip(bytes) ? 'zip' : 'legacy';
}

/**
 * Reads a checkpoint that torch.save wrote, in either format. Nothing in the file is executed:
 * pickle globals outside the allow-list are refused. Errors start with `fileName`.
 */
export function readCheckpoint(
  bytes: Uint8Array,
  fileName: string,
  options: ReadCheckpointOptions = {},
): unknown {
  try {
    if (bytes.length === 0) throw new SerializationError(fileName, 'the file is empty');
    if (isZip(bytes)) return readZipCheckpoint(bytes, fileName, options);
    if (bytes.length >= 262 && Buffer.from(bytes.subarray(257, 262)).toString('latin1') === 'ustar') {
      throw new SerializationError(
        fileName,
        'this is the tar format of PyTorch before 0.4, which is not supported; load and save ' +
          'it again with a newer PyTorch',
      );
    }
    return readLegacyCheckpoint(bytes, fileName, options);
  } catch (error) {
    if (error instanceof SerializationError && error.file === fileName) throw error;
    const detail = error instanceof Error ? error.message : String(error);
    throw new SerializationError(fileName, detail, { cause: error });
  }
}

/** Storage bytes as the records expect them: little-endian, aligned to the item size. */
function storageBytes(
  data: Uint8Array,
  itemSize: number,
  littleEndian: boolean,
  options: ReadCheckpointOptions,
): Uint8Array {
  if (!littleEndian && itemSize > 1) {
    const swapped = Buffer.from(data); // a copy: the input is never modified
    if (itemSize === 2) swapped.swap16();
    else if (itemSize === 4) swapped.swap32();
    else swapped.swap64();
    return new Uint8Array(swapped.buffer, swapped.byteOffset, swapped.byteLength);
  }
  if (options.alignStorages !== false && data.byteOffset % itemSize !== 0) {
    return new Uint8Array(data);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function checkCount(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${what} must be a non-negative integer, got ${describePyValue(value)}`);
  }
  return value;
}

function storagePid(pid: unknown): PyTuple {
  if (!(pid instanceof PyTuple) || pid.length === 0) {
    throw new Error(`a persistent id must be a tuple, got ${describePyValue(pid)}`);
  }
  const kind = pidString(pid[0], 'kind');
  if (kind === 'module') {
    throw new Error('the file holds a whole pickled model; save its state_dict() instead');
  }
  if (kind !== 'storage') throw new Error(`unknown persistent id kind '${kind}'`);
  return pid;
}

// zip format

function readZipCheckpoint(
  bytes: Uint8Array,
  source: string,
  options: ReadCheckpointOptions,
): unknown {
  const zip = new ZipReader(bytes, source, options);
  const names = [...zip.entries.keys()];
  if (names.length === 0) throw new SerializationError(source, 'the zip archive is empty');

  // every record sits in one folder, named after the first record's (as PyTorch reads it)
  const slash = names[0].indexOf('/');
  const prefix = slash >= 0 ? names[0].slice(0, slash + 1) : '';
  if (zip.entries.has(`${prefix}constants.pkl`) || names.some((n) => n.startsWith(`${prefix}code/`))) {
    throw new SerializationError(
      source,
      'this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint',
    );
  }
  if (!zip.entries.has(`${prefix}data.pkl`)) {
    throw new SerializationError(
      source,
      `zip archive without a '${prefix}data.pkl' record: not a PyTorch checkpoint`,
    );
  }

  let littleEndian = true;
  if (zip.entries.has(`${prefix}byteorder`)) {
    const order = Buffer.from(zip.read(`${prefix}byteorder`)).toString('latin1');
    if (order !== 'little' && order !== 'big') {
      throw new SerializationError(source, `unknown byte order record '${order.slice(0, 20)}'`);
    }
    littleEndian = order === 'little';
  }

  const storages = new Map<string, StorageRecord>();
  const persistentLoad = (pid: unknown): StorageRecord => {
    const fields = storagePid(pid);
    if (fields.length !== 5) throw new Error(`a storage id has 5 fields, got ${fields.length}`);
    const [, type, rawKey, rawLocation, rawNumel] = fields;
    const dtype = storageDType(type);
    const key = pidString(rawKey, 'key');
    const numel = checkCount(rawNumel, 'storage size');
    const known = storages.get(key);
    if (known) {
      if (known.dtype !== dtype) throw new Error(`storage '${key}' is used with two dtypes`);
      return known;
    }

    const name = `${prefix}data/${key}`;
    if (!zip.entries.has(name)) throw new Error(`storage '${key}' has no record '${name}'`);
    const itemSize = DTYPE_ITEM_SIZE[dtype];
    const record = zip.read(name);
    if (record.byteLength < numel * itemSize) {
      throw new Error(
        `record '${name}' holds ${record.byteLength} bytes, but its storage declares ${numel} ` +
          `${dtype} elements (${numel * itemSize} bytes)`,
      );
    }
    const data = storageBytes(record.subarray(0, numel * itemSize), itemSize, littleEndian, options);
    const location = pidString(rawLocation, 'location');
    const storage: StorageRecord = { kind: 'storage', key, dtype, data, location };
    storages.set(key, storage);
    return storage;
  };

  const pickled = zip.read(`${prefix}data.pkl`);
  return unpickle(pickled, {
    source,
    globals: torchGlobals(),
    persistentLoad,
    limits: options.limits,
  }).value;
}

// legacy format: four pickles (magic number, protocol version, system info, the object), the
// pickled list of storage keys, then each storage as an int64 element count and its bytes

function readLegacyCheckpoint(
  bytes: Uint8Array,
  source: string,
  options: ReadCheckpointOptions,
): unknown {
  let magic;
  try {
    magic = unpickle(bytes, { source, limits: options.limits });
  } catch (error) {
    throw new SerializationError(
      source,
      'not a PyTorch checkpoint: neither a zip archive nor the legacy format ' +
        `(${(error as Error).message.slice(source.length + 2)})`,
      { cause: error },
    );
  }
  if (magic.value !== LEGACY_MAGIC) {
    throw new SerializationError(
      source,
      'not a PyTorch checkpoint: neither a zip archive nor a legacy file (wrong magic number)',
    );
  }
  const protocol = unpickle(bytes, { source, start: magic.end, limits: options.limits });
  if (protocol.value !== LEGACY_PROTOCOL) {
    throw new SerializationError(
      source,
      `legacy format protocol ${describePyValue(protocol.value)} is not the supported ` +
        `${LEGACY_PROTOCOL}`,
    );
  }
  const systemInfo = unpickle(bytes, { source, start: protocol.end, limits: options.limits });
  const littleEndian =
    systemInfo.value instanceof Map ? systemInfo.value.get('little_endian') : undefined;
  if (typeof littleEndian !== 'boolean') {
    throw new SerializationError(source, 'legacy header lacks its little_endian flag');
  }

  // storages are known from persistent ids first; their bytes follow the object pickle
  const storages = new Map<string, StorageRecord>();
  const numels = new Map<StorageRecord, number>();
  const views = new Map<StorageRecord, { root: StorageRecord; offset: number }>();
  const persistentLoad = (pid: unknown): StorageRecord => {
    const fields = storagePid(pid);
    if (fields.length !== 5 && fields.length !== 6) {
      throw new Error(`a legacy storage id has 5 or 6 fields, got ${fields.length}`);
    }
    const [, type, rawKey, rawLocation, rawNumel, viewMetadata] = fields;
    const dtype = storageDType(type);
    const key = pidString(rawKey, 'key');
    const numel = checkCount(rawNumel, 'storage size');
    if (numel * DTYPE_ITEM_SIZE[dtype] > bytes.length) {
      throw new Error(
        `storage '${key}' declares ${numel} ${dtype} elements, more than the file's ` +
          `${bytes.length} bytes can hold`,
      );
    }

    let root = storages.get(key);
    if (!root) {
      const location = pidString(rawLocation, 'location');
      root = { kind: 'storage', key, dtype, data: EMPTY, location };
      storages.set(key, root);
      numels.set(root, numel);
    } else if (root.dtype !== dtype || numels.get(root) !== numel) {
      throw new Error(`storage '${key}' is declared twice with different types or sizes`);
    }
    if (viewMetadata === null || viewMetadata === undefined) return root;

    // PyTorch before 1.0 saved views of storages: (view key, offset, size) in elements
    if (!(viewMetadata instanceof PyTuple) || viewMetadata.length !== 3) {
      throw new Error(
        `storage view metadata must be (key, offset, size), got ${describePyValue(viewMetadata)}`,
      );
    }
    const viewKey = pidString(viewMetadata[0], 'view key');
    const offset = checkCount(viewMetadata[1], 'view offset');
    const size = checkCount(viewMetadata[2], 'view size');
    if (offset + size > numel) {
      throw new Error(`storage view '${viewKey}' reaches past the end of storage '${key}'`);
    }
    let view = storages.get(viewKey);
    if (!view) {
      view = { kind: 'storage', key: viewKey, dtype, data: EMPTY, location: root.location };
      storages.set(viewKey, view);
      numels.set(view, size);
      views.set(view, { root, offset });
    } else if (numels.get(view) !== size || view.dtype !== dtype) {
      throw new Error(`storage view '${viewKey}' is declared twice with different sizes`);
    }
    return view;
  };

  const object = unpickle(bytes, {
    source,
    start: systemInfo.end,
    globals: torchGlobals((storage) => numels.get(storage) ?? storageNumelFromData(storage)),
    persistentLoad,
    limits: options.limits,
  });
  const keyList = unpickle(bytes, { source, start: object.end, limits: options.limits });
  if (!Array.isArray(keyList.value)) {
    throw new SerializationError(
      source,
      `expected the list of storage keys, got ${describePyValue(keyList.value)}`,
    );
  }

  const filled = new Set<StorageRecord>();
  let at = keyList.end;
  for (const rawKey of keyList.value) {
    const key = pidString(rawKey, 'key');
    const storage = storages.get(key);
    if (!storage || views.has(storage)) {
      throw new SerializationError(source, `the storage list names '${key}', which no tensor uses`);
    }
    if (filled.has(storage)) {
      throw new SerializationError(source, `the storage list names '${key}' twice`);
    }
    if (at + 8 > bytes.length) {
      throw new SerializationError(
        source,
        `truncated file: storage '${key}' should start at byte ${at}, but the file has ` +
          `${bytes.length} bytes`,
      );
    }
    const count = Buffer.from(bytes.buffer, bytes.byteOffset + at, 8).readBigInt64LE(0);
    const expected = numels.get(storage)!;
    if (count !== BigInt(expected)) {
      throw new SerializationError(
        source,
        `storage '${key}' has ${count} elements in the file, but ${expected} were declared`,
      );
    }
    const itemSize = DTYPE_ITEM_SIZE[storage.dtype];
    const start = at + 8;
    const end = start + expected * itemSize;
    if (end > bytes.length) {
      throw new SerializationError(
        source,
        `truncated file: storage '${key}' needs bytes ${start} to ${end}, but the file has ` +
          `${bytes.length} bytes`,
      );
    }
    // a misaligned storage may move back over its own count field (at most 7 of its 8 bytes)
    const misalignment = (bytes.byteOffset + start) % itemSize;
    const move = options.mayModifyInput && options.alignStorages !== false ? misalignment : 0;
    if (move > 0) bytes.copyWithin(start - move, start, end);
    const data = bytes.subarray(start - move, end - move);
    storage.data = storageBytes(data, itemSize, littleEndian, options);
    filled.add(storage);
    at = end;
  }

  for (const storage of numels.keys()) {
    if (!filled.has(storage) && !views.has(storage)) {
      throw new SerializationError(source, `storage '${storage.key}' has no data in the file`);
    }
  }
  for (const [view, { root, offset }] of views) {
    const itemSize = DTYPE_ITEM_SIZE[view.dtype];
    view.data = root.data.subarray(offset * itemSize, (offset + numels.get(view)!) * itemSize);
  }
  return object.value;
}

// writing

/**
 * The zip checkpoint of `value` as a list of chunks whose concatenation is the file; storage
 * bytes are not copied. Tensors may be TensorRecords or ContiguousTensorRecords.
 */
export function checkpointChunks(
  value: unknown,
  options: WriteCheckpointOptions & { source?: string } = {},
): Uint8Array[] {
  const source = options.source ?? 'checkpoint';
  const archive = options.archiveName ?? 'archive';
  if (!/^[A-Za-z0-9_.-]+$/.test(archive)) {
    throw new SerializationError(source, `archiveName must be a plain folder name, got '${archive}'`);
  }
  const storages = new StorageWriter();
  const pickled = pickle(value, {
    source,
    persistentId: storages.persistentId,
    reduce: storages.reduce,
  });
  const entries = [
    { name: `${archive}/data.pkl`, data: pickled },
    ...storages.storages.map((storage, i) => ({ name: `${archive}/data/${i}`, data: storage.data })),
    { name: `${archive}/version`, data: new Uint8Array(Buffer.from('3\n')) },
  ];
  return zipChunks(entries, { forceZip64: options.forceZip64 });
}

/** Writes `value` as a zip checkpoint that torch.load (1.6 and later) reads. */
export function writeCheckpoint(value: unknown, options: WriteCheckpointOptions = {}): Uint8Array {
  return concatBytes(checkpointChunks(value, options));
}

// files

const MAX_IO = 1 << 30; // bytes per read or write call

/** Reads and parses a checkpoint file. Errors start with the path. */
export async function readCheckpointFile(
  path: string,
  options: ReadCheckpointOptions = {},
): Promise<unknown> {
  let bytes: Uint8Array;
  try {
    bytes = await readWholeFile(path);
  } catch (error) {
    throw new SerializationError(path, `cannot read the file: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return readCheckpoint(bytes, path, { mayModifyInput: true, ...options });
}

async function readWholeFile(path: string): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size > bufferConstants.MAX_LENGTH) {
      throw new Error(`${size} bytes is more than one buffer can hold`);
    }
    // a buffer of its own starts at offset 0, so aligned records in the file stay aligned
    const buf = Buffer.allocUnsafeSlow(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await handle.read(buf, done, Math.min(size - done, MAX_IO), done);
      if (bytesRead === 0) throw new Error('the file got shorter while it was read');
      done += bytesRead;
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, size);
  } finally {
    await handle.close();
  }
}

// Temporary files being written. A process that exits in the middle of a write (a second Ctrl-C)
// removes them on its way out, leaving only complete checkpoints behind.
const unfinishedWrites = new Set<string>();
let exitHookInstalled = false;

function removeUnfinishedWrites(): void {
  for (const file of unfinishedWrites) rmSync(file, { force: true });
  unfinishedWrites.clear();
}

/**
 * Writes `value` as a zip checkpoint at `path`: to a temporary file in the same folder, synced
 * to disk, then renamed into place. A failure leaves any previous file at `path` as it was and
 * removes the temporary file. Errors start with the path.
 */
export async function writeCheckpointFile(
  path: string,
  value: unknown,
  options: WriteCheckpointOptions = {},
): Promise<void> {
  // serialise first: a value that cannot be written fails before the disk is touched
  const chunks = checkpointChunks(value, { ...options, source: path });
  const folder = dirname(resolve(path));
  const temporary = join(folder, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);

  if (!exitHookInstalled) {
    process.on('exit', removeUnfinishedWrites);
    exitHookInstalled = true;
  }
  unfinishedWrites.add(temporary);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temporary, 'wx', 0o666);
    for (const chunk of chunks) {
      for (let done = 0; done < chunk.byteLength; ) {
        const length = Math.min(chunk.byteLength - done, MAX_IO);
        const { bytesWritten } = await handle.write(chunk, done, length);
        if (bytesWritten === 0) throw new Error('the disk accepted no bytes');
        done += bytesWritten;
      }
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temporary, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(temporary, { force: true }).catch(() => undefined);
    throw new SerializationError(path, `cannot write the checkpoint: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    unfinishedWrites.delete(temporary);
  }
  await syncFolder(folder);
}

/** Makes a rename durable; not every platform can sync a folder, and that is not an error. */
async function syncFolder(folder: string): Promise<void> {
  try {
    const handle = await open(folder, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best effort
  }
}
