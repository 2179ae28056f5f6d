// A minimal ZIP reader (stored and deflated entries, zip64) and a writer of stored entries laid
// out as PyTorch writes them: each entry's data starts at a multiple of 64 bytes.

import { Buffer, constants as bufferConstants } from 'node:buffer';
import * as zlib from 'node:zlib';

import { SerializationError } from './errors.js';

const LOCAL_HEADER = 0x04034b50;
const CENTRAL_HEADER = 0x02014b50;
const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const ZIP64_END_OF_CENTRAL_DIRECTORY = 0x06064b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EXTRA = 0x0001;
const ALIGNMENT_EXTRA = 0x4246; // 'FB', the padding field PyTorch's writer uses
const MAX_32 = 0xffffffff;
const MAX_16 = 0xffff;

// CRC-32 of zlib: native since Node 20.15; a table-driven fallback before that.
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
let crcTable: Uint32Array | undefined;

export function crc32(data: Uint8Array): number {
  if (nativeCrc32) return nativeCrc32(data) >>> 0;
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** Whether the bytes start like a ZIP archive (a local header or an empty archive). */
export function isZip(bytes: Uint8Array): boolean {
  if (bytes.length < 4 || bytes[0] !== 0x50 || bytes[1] !== 0x4b) return false;
  return (bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6);
}

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

export interface ZipReadOptions {
  /** Check each entry's CRC-32 when it is read (default true). */
  verifyCrc?: boolean;
  /** Total bytes that inflating deflated entries may produce (default 4 GiB). */
  maxInflatedBytes?: number;
}

/** Reads the central directory of a ZIP archive held in memory; entries are read on demand. */
export class ZipReader {
  /** Entries in central-directory order. */
  readonly entries: ReadonlyMap<string, ZipEntry>;
  private readonly buf: Buffer;
  private readonly centralDirectoryOffset: number;
  private inflated = 0;

  constructor(
    bytes: Uint8Array,
    private readonly source: string,
    private readonly options: ZipReadOptions = {},
  ) {
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const { offset, size, count } = this.findCentralDirectory();
    this.centralDirectoryOffset = offset;
    this.entries = this.readCentralDirectory(offset, size, count);
  }

  private fail(detail: string): never {
    throw new SerializationError(this.source, `zip: ${detail}`);
  }

  private u64(at: number): number {
    const value = this.buf.readBigUInt64LE(at);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`64-bit field at byte ${at} is too large`);
    return Number(value);
  }

  private findCentralDirectory(): { offset: number; size: number; count: number } {
    const buf = this.buf;
    if (buf.length < 22) this.fail(`${buf.length} bytes is too short for a zip archive`);

    // the end record is the last 22 bytes, unless a comment (at most 64 KiB) follows it
    let end = -1;
    for (let at = buf.length - 22; at >= Math.max(0, buf.length - 22 - MAX_16); at--) {
      if (buf.readUInt32LE(at) === END_OF_CENTRAL_DIRECTORY) {
        if (at + 22 + buf.readUInt16LE(at + 20) <= buf.length) {
          end = at;
          break;
        }
      }
    }
    if (end < 0) this.fail('no end of central directory record (truncated or not a zip archive)');
    if (buf.readUInt16LE(end + 4) !== 0 || buf.readUInt16LE(end + 6) !== 0) {
      this.fail('multi-disk archives are not supported');
    }

    let count = buf.readUInt16LE(end + 10);
    let size = buf.readUInt32LE(end + 12);
    let offset = buf.readUInt32LE(end + 16);
    let directoryEnd = end;

    const locator = end - 20;
    if (locator >= 0 && buf.readUInt32LE(locator) === ZIP64_LOCATOR) {
      const record = this.u64(locator + 8);
      if (record + 56 > locator || buf.readUInt32LE(record) !== ZIP64_END_OF_CENTRAL_DIRECTORY) {
        this.fail('zip64 end of central directory record is missing or misplaced');
      }
      count = this.u64(record + 32);
      size = this.u64(record + 40);
      offset = this.u64(record + 48);
      directoryEnd = record;
    }

    if (offset + size > directoryEnd) {
      this.fail(
        `central directory (${size} bytes at byte ${offset}) runs past its end record at ` +
          `byte ${directoryEnd} (truncated file?)`,
      );
    }
    if (count > size / 46) this.fail(`${count} entries cannot fit in ${size} bytes`);
    return { offset, size, count };
  }

  private readCentralDirectory(offset: number, size: number, count: number): Map<string, ZipEntry> {
    const buf = this.buf;
    const end = offset + size;
    const entries = new Map<string, ZipEntry>();
    let at = offset;
    for (let i = 0; i < count; i++) {
      if (at + 46 > end || buf.readUInt32LE(at) !== CENTRAL_HEADER) {
        this.fail(`central directory entry ${i} at byte ${at} is corrupt`);
      }
      const flags = buf.readUInt16LE(at + 8);
      const method = buf.readUInt16LE(at + 10);
      const crc = buf.readUInt32LE(at + 16);
      let compressedSize = buf.readUInt32LE(at + 20);
      let uncompressedSize = buf.readUInt32LE(at + 24);
      const nameLength = buf.readUInt16LE(at + 28);
      const extraLength = buf.readUInt16LE(at + 30);
      const commentLength = buf.readUInt16LE(at + 32);
      let localHeaderOffset = buf.readUInt32LE(at + 42);
      const next = at + 46 + nameLength + extraLength + commentLength;
      if (next > end) this.fail(`central directory entry ${i} runs past the directory`);
      const name = buf.toString('utf8', at + 46, at + 46 + nameLength);

      // zip64: fields saturated at 0xffffffff are in the extra field, in this order
      const wanted = [uncompressedSize, compressedSize, localHeaderOffset].map((v) => v === MAX_32);
      if (wanted.some(Boolean)) {
        const values = this.zip64Extra(at + 46 + nameLength, extraLength, wanted, name);
        [uncompressedSize, compressedSize, localHeaderOffset] = [
          wanted[0] ? values.shift()! : uncompressedSize,
          wanted[1] ? values.shift()! : compressedSize,
          wanted[2] ? values.shift()! : localHeaderOffset,
        ];
      }

      if (entries.has(name)) this.fail(`entry '${name}' appears twice`);
      entries.set(name, {
        name,
        method,
        flags,
        crc32: crc,
        compressedSize,
        uncompressedSize,
        localHeaderOffset,
      });
      at = next;
    }
    return entries;
  }

  private zip64Extra(start: number, length: number, wanted: boolean[], name: string): number[] {
    const end = start + length;
    for (let at = start; at + 4 <= end; ) {
      const id = this.buf.readUInt16LE(at);
      const size = this.buf.readUInt16LE(at + 2);
      if (at + 4 + size > end) break;
      if (id === ZIP64_EXTRA) {
        const needed = wanted.filter(Boolean).length;
        if (size < needed * 8) break;
        return Array.from({ length: needed }, (_, i) => this.u64(at + 4 + 8 * i));
      }
      at += 4 + size;
    }
    return this.fail(`entry '${name}' lacks its zip64 sizes`);
  }

  /** The entry's bytes: a view of the archive for stored entries, a new buffer if deflated. */
  read(name: string): Uint8Array {
    const entry = this.entries.get(name);
    if (!entry) this.fail(`no entry '${name}'`);
    const buf = this.buf;
    const at = entry.localHeaderOffset;
    if (at + 30 > this.centralDirectoryOffset || buf.readUInt32LE(at) !== LOCAL_HEADER) {
      this.fail(`local header of '${name}' at byte ${at} is missing (corrupt archive)`);
    }
    if (entry.flags & 1) this.fail(`entry '${name}' is encrypted`);
    const start = at + 30 + buf.readUInt16LE(at + 26) + buf.readUInt16LE(at + 28);
    const end = start + entry.compressedSize;
    if (end > this.centralDirectoryOffset) {
      this.fail(
        `data of '${name}' (${entry.compressedSize} bytes at byte ${start}) runs into the ` +
          `central directory at byte ${this.centralDirectoryOffset} (corrupt archive)`,
      );
    }
    const raw = buf.subarray(start, end);

    let data: Uint8Array;
    if (entry.method === 0) {
      if (entry.compressedSize !== entry.uncompressedSize) {
        this.fail(`stored entry '${name}' has different compressed and uncompressed sizes`);
      }
      data = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    } else if (entry.method === 8) {
      data = this.inflate(entry, raw);
    } else {
      this.fail(`entry '${name}' uses compression method ${entry.method} (only 0 and 8)`);
    }

    if (this.options.verifyCrc !== false && crc32(data) !== entry.crc32) {
      this.fail(`entry '${name}' fails its CRC-32 check (corrupt archive)`);
    }
    return data;
  }

  private inflate(entry: ZipEntry, raw: Uint8Array): Uint8Array {
    const limit = this.options.maxInflatedBytes ?? 4 * 1024 ** 3;
    const size = entry.uncompressedSize;
    if (this.inflated + size > limit || size > bufferConstants.MAX_LENGTH) {
      this.fail(
        `entry '${entry.name}' would inflate to ${size} bytes, past the limit of ${limit} ` +
          'bytes for the archive (option maxInflatedBytes)',
      );
    }
    let out: Buffer;
    try {
      out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(size, 1) });
    } catch (error) {
      return this.fail(`entry '${entry.name}' has corrupt deflate data: ${(error as Error).message}`);
    }
    if (out.length !== size) {
      this.fail(`entry '${entry.name}' inflates to ${out.length} bytes, not the declared ${size}`);
    }
    this.inflated += size;
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }
}

export interface ZipWriteEntry {
  name: string;
  data: Uint8Array;
}

export interface ZipWriteOptions {
  /** Entry data starts at a multiple of this many bytes (default 64, as PyTorch). */
  alignment?: number;
  /** Write zip64 fields even when sizes and offsets fit in 32 bits (for testing readers). */
  forceZip64?: boolean;
}

/**
 * The archive as a list of chunks whose concatenation is the file. Entry data is not copied:
 * the chunks include the given Uint8Arrays themselves.
 */
export function zipChunks(
  entries: readonly ZipWriteEntry[],
  options: ZipWriteOptions = {},
): Uint8Array[] {
  const alignment = options.alignment ?? 64;
  const force = options.forceZip64 ?? false;
  const chunks: Uint8Array[] = [];
  const central: Buffer[] = [];
  let offset = 0;

  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const size = entry.data.byteLength;
    const crc = crc32(entry.data);
    const zip64 = force || size >= MAX_32 || offset >= MAX_32;

    // local header, then zip64 sizes if needed, then padding up to the alignment
    const zip64Length = zip64 ? 20 : 0;
    const unpadded = offset + 30 + name.length + zip64Length + 4;
    const padding = (alignment - (unpadded % alignment)) % alignment;
    const header = Buffer.alloc(30 + name.length + zip64Length + 4 + padding);
    header.writeUInt32LE(LOCAL_HEADER, 0);
    header.writeUInt16LE(zip64 ? 45 : 20, 4);
    header.writeUInt16LE(0x0800, 6); // names are UTF-8
    header.writeUInt16LE(0, 8); // stored
    header.writeUInt32LE(crc, 14);
    header.writeUInt32LE(zip64 ? MAX_32 : size, 18);
    header.writeUInt32LE(zip64 ? MAX_32 : size, 22);
    header.writeUInt16LE(name.length, 26);
    header.writeUInt16LE(zip64Length + 4 + padding, 28);
    name.copy(header, 30);
    let at = 30 + name.length;
    if (zip64) {
      header.writeUInt16LE(ZIP64_EXTRA, at);
      header.writeUInt16LE(16, at + 2);
      header.writeBigUInt64LE(BigInt(size), at + 4);
      header.writeBigUInt64LE(BigInt(size), at + 12);
      at += 20;
    }
    header.writeUInt16LE(ALIGNMENT_EXTRA, at);
    header.writeUInt16LE(padding, at + 2);
    header.fill(0x5a, at + 4); // 'Z', as PyTorch pads

    chunks.push(header, entry.data);
    central.push(centralHeader(name, crc, size, offset, zip64));
    offset += header.length + size;
  }

  const directory = Buffer.concat(central);
  const directoryOffset = offset;
  chunks.push(directory);
  offset += directory.length;

  const count = entries.length;
  const zip64End = force || count >= MAX_16 || directoryOffset >= MAX_32 || directory.length >= MAX_32;
  if (zip64End) {
    const record = Buffer.alloc(56 + 20);
    record.writeUInt32LE(ZIP64_END_OF_CENTRAL_DIRECTORY, 0);
    record.writeBigUInt64LE(44n, 4); // size of the rest of the record
    record.writeUInt16LE(0x031e, 12); // made by: Unix, spec 3.0
    record.writeUInt16LE(45, 14);
    record.writeBigUInt64LE(BigInt(count), 24);
    record.writeBigUInt64LE(BigInt(count), 32);
    record.writeBigUInt64LE(BigInt(directory.length), 40);
    record.writeBigUInt64LE(BigInt(directoryOffset), 48);
    record.writeUInt32LE(ZIP64_LOCATOR, 56);
    record.writeBigUInt64LE(BigInt(offset), 64);
    record.writeUInt32LE(1, 72); // total disks
    chunks.push(record);
  }

  const end = Buffer.alloc(22);
  end.writeUInt32LE(END_OF_CENTRAL_DIRECTORY, 0);
  end.writeUInt16LE(Math.min(count, MAX_16), 8);
  end.writeUInt16LE(Math.min(count, MAX_16), 10);
  end.writeUInt32LE(Math.min(directory.length, MAX_32), 12);
  end.writeUInt32LE(zip64End && force ? MAX_32 : Math.min(directoryOffset, MAX_32), 16);
  chunks.push(end);
  return chunks;
}

function centralHeader(name: Buffer, crc: number, size: number, offset: number, zip64: boolean): Buffer {
  const extraLength = zip64 ? 28 : 0;
  const header = Buffer.alloc(46 + name.length + extraLength);
  header.writeUInt32LE(CENTRAL_HEADER, 0);
  header.writeUInt16LE(0x031e, 4); // made by: Unix, spec 3.0
  header.writeUInt16LE(zip64 ? 45 : 20, 6);
  header.writeUInt16LE(0x0800, 8);
  header.writeUInt16LE(0, 10);
  header.writeUInt32LE(crc, 16);
  header.writeUInt32LE(zip64 ? MAX_32 : size, 20);
  header.writeUInt32LE(zip64 ? MAX_32 : size, 24);
  header.writeUInt16LE(name.length, 28);
  header.writeUInt16LE(extraLength, 30);
  header.writeUInt32LE(0o100644 * 0x10000, 38); // a regular file, rw-r--r--
  header.writeUInt32LE(zip64 ? MAX_32 : offset, 42);
  name.copy(header, 46);
  if (zip64) {
    const at = 46 + name.length;
    header.writeUInt16LE(ZIP64_EXTRA, at);
    header.writeUInt16LE(24, at + 2);
    header.writeBigUInt64LE(BigInt(size), at + 4);
    header.writeBigUInt64LE(BigInt(size), at + 12);
    header.writeBigUInt64LE(BigInt(offset), at + 20);
  }
  return header;
}

/** The archive as one buffer. */
export function writeZip(entries: readonly ZipWriteEntry[], options: ZipWriteOptions = {}): Uint8Array {
  return concatBytes(zipChunks(entries, options));
}

/** Chunks joined into a new buffer of their own (never a slice of Node's shared pool). */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const chunk of chunks) total += chunk.byteLength;
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
