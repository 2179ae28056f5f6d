// POSIX tar, read as a stream (one member in memory at a time, never the whole shard) and
// written in the layout of Python's tarfile / webdataset's TarWriter: ustar headers, pax
// `path` records for long or non-ASCII names, end blocks padded to a 10 KiB record.

import { open, rename, rm, type FileHandle } from 'node:fs/promises';

const BLOCK = 512;
const RECORD = 20 * BLOCK;

/** One regular member of a tar archive. */
export interface TarEntry {
  name: string;
  data: Buffer;
  mtime: number;
  mode: number;
}

/** The archive ends inside a header or a member (a shard cut short), or a header is bad. */
export class TarFormatError extends Error {
  readonly file: string;
  readonly offset: number;
  /** The member being read when the archive ended, when its header was complete. */
  readonly memberName: string | null;
  /** The message without the file's name. */
  readonly detail: string;

  constructor(file: string, offset: number, message: string, memberName: string | null = null) {
    const detail = `${message} at byte ${offset}${memberName === null ? '' : ` (member ${memberName})`}`;
    super(`${file}: ${detail}`);
    this.name = 'TarFormatError';
    this.detail = detail;
    this.file = file;
    this.offset = offset;
    this.memberName = memberName;
  }
}

/** Buffered sequential reads from a file handle. */
class ByteSource {
  private buffer = Buffer.alloc(0);
  private start = 0;
  private eof = false;
  position = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly chunkSize: number,
  ) {}

  /** Reads n bytes, or fewer at the end of the file. */
  async read(n: number): Promise<Buffer> {
    while (this.buffer.length - this.start < n && !this.eof) await this.fill(n);
    const available = Math.min(n, this.buffer.length - this.start);
    const out = this.buffer.subarray(this.start, this.start + available);
    this.start += available;
    this.position += available;
    return out;
  }

  private async fill(wanted: number): Promise<void> {
    const left = this.buffer.length - this.start;
    const size = Math.max(this.chunkSize, wanted - left);
    const next = Buffer.allocUnsafe(left + size);
    this.buffer.copy(next, 0, this.start);
    const { bytesRead } = await this.handle.read(next, left, size, null);
    if (bytesRead === 0) this.eof = true;
    this.buffer = next.subarray(0, left + bytesRead);
    this.start = 0;
  }
}

/**
 * Streams the regular members of a tar file in order. Member data are copies owned by the
 * caller. Throws `TarFormatError` when the archive is cut short or a header is corrupt,
 * after yielding every complete member before that point.
 */
export async function* readTar(
  file: string,
  options: { chunkSize?: number } = {},
): AsyncGenerator<TarEntry> {
  const handle = await open(file, 'r');
  try {
    const source = new ByteSource(handle, options.chunkSize ?? 1 << 20);
    let longName: string | null = null;
    let pax: Record<string, string> = {};
    for (;;) {
      const offset = source.position;
      const header = await source.read(BLOCK);
      if (header.length === 0) return; // no end-of-archive blocks: tolerated, as tarfile does
      if (header.length < BLOCK) throw new TarFormatError(file, offset, 'truncated header');
      if (isZeroBlock(header)) return;
      if (!checksumOk(header)) throw new TarFormatError(file, offset, 'bad header checksum');

      const type = String.fromCharCode(header[156]!);
      const size = pax.size !== undefined ? Number(pax.size) : parseNumber(header, 124, 12);
      const body = await source.read(size);
      const padding = (BLOCK - (size % BLOCK)) % BLOCK;
      const pad = await source.read(padding);
      if (body.length < size || pad.length < padding) {
        const known = type === 'x' || type === 'L' ? null : pax.path ?? longName ?? headerName(header);
        throw new TarFormatError(file, offset, 'truncated member data', known);
      }

      if (type === 'x') {
        pax = parsePax(body);
        continue;
      }
      if (type === 'g') continue;
      if (type === 'L') {
        longName = body.toString('utf8').replace(/\0+$/, '');
        continue;
      }
      const name = pax.path ?? longName ?? headerName(header);
      const mtime = pax.mtime !== undefined ? Number(pax.mtime) : parseNumber(header, 136, 12);
      const mode = parseNumber(header, 100, 8);
      longName = null;
      pax = {};
      if (type !== '0' && type !== '\0' && type !== '7') continue; // directories, links, ...
      yield { name, data: Buffer.from(body), mtime, mode };
    }
  } finally {
    await handle.close();
  }
}

/** Member names and sizes from the headers alone (positioned reads, data skipped). */
export async function listTar(file: string): Promise<{ name: string; size: number }[]> {
  const handle = await open(file, 'r');
  try {
    const out: { name: string; size: number }[] = [];
    const header = Buffer.alloc(BLOCK);
    let offset = 0;
    let longName: string | null = null;
    let pax: Record<string, string> = {};
    const fileSize = (await handle.stat()).size;
    for (;;) {
      const { bytesRead } = await handle.read(header, 0, BLOCK, offset);
      if (bytesRead === 0) return out;
      if (bytesRead < BLOCK) throw new TarFormatError(file, offset, 'truncated header');
      if (isZeroBlock(header)) return out;
      if (!checksumOk(header)) throw new TarFormatError(file, offset, 'bad header checksum');
      const type = String.fromCharCode(header[156]!);
      const size = pax.size !== undefined ? Number(pax.size) : parseNumber(header, 124, 12);
      const dataStart = offset + BLOCK;
      if (dataStart + size > fileSize) throw new TarFormatError(file, offset, 'truncated member data');
      if (type === 'x' || type === 'L') {
        const body = Buffer.alloc(size);
        await handle.read(body, 0, size, dataStart);
        if (type === 'x') pax = parsePax(body);
        else longName = body.toString('utf8').replace(/\0+$/, '');
      } else if (type !== 'g') {
        if (type === '0' || type === '\0' || type === '7') {
          out.push({ name: pax.path ?? longName ?? headerName(header), size });
        }
        longName = null;
        pax = {};
      }
      offset = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    }
  } finally {
    await handle.close();
  }
}

export interface TarWriterOptions {
  /** Member modification time in seconds (default: now, as webdataset writes). */
  mtime?: number;
  /** Member permission bits (default 0o444, as webdataset writes). */
  mode?: number;
  uname?: string;
  gname?: string;
}

/**
 * Writes a tar file atomically: members go to `<path>.partial`, which `close()` flushes,
 * syncs and renames to `path`. `abort()` removes the partial file.
 */
export class TarWriter {
  readonly path: string;
  readonly partialPath: string;
  private handle: FileHandle | null = null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private written = 0;
  private readonly options: Required<TarWriterOptions>;
  count = 0;

  private constructor(path: string, options: TarWriterOptions) {
    this.path = path;
    this.partialPath = `${path}.partial`;
    this.options = {
      mtime: options.mtime ?? Math.floor(Date.now() / 1000),
      mode: options.mode ?? 0o444,
      uname: options.uname ?? 'bigdata',
      gname: options.gname ?? 'bigdata',
    };
  }

  static async create(path: string, options: TarWriterOptions = {}): Promise<TarWriter> {
    const writer = new TarWriter(path, options);
    writer.handle = await open(writer.partialPath, 'w');
    return writer;
  }

  /** Appends one member. */
  async add(name: string, data: Uint8Array): Promise<void> {
    const nameBytes = Buffer.from(name, 'utf8');
    const ascii = /^[\x20-\x7e]*$/.test(name);
    if (nameBytes.length > 100 || !ascii) {
      const record = paxRecord('path', name);
      this.push(makeHeader('././@PaxHeader', record.length, 'x', this.options));
      this.push(record);
      this.pad(record.length);
    }
    const shortName = nameBytes.length > 100 || !ascii ? asciiTail(name) : name;
    this.push(makeHeader(shortName, data.length, '0', this.options));
    this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    this.pad(data.length);
    this.count++;
    if (this.pendingBytes >= 4 << 20) await this.flush();
  }

  /** Ends the archive, syncs it and moves it into place. */
  async close(): Promise<void> {
    if (this.handle === null) throw new Error(`TarWriter.close: ${this.path} is already closed`);
    const end = this.written + this.pendingBytes + 2 * BLOCK;
    const total = Math.ceil(end / RECORD) * RECORD;
    this.push(Buffer.alloc(total - this.written - this.pendingBytes));
    await this.flush();
    await this.handle.sync();
    await this.handle.close();
    this.handle = null;
    await rename(this.partialPath, this.path);
  }

  /** Stops writing and removes the partial file. */
  async abort(): Promise<void> {
    if (this.handle !== null) {
      await this.handle.close();
      this.handle = null;
    }
    await rm(this.partialPath, { force: true });
  }

  private push(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  private pad(size: number): void {
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (padding > 0) this.push(Buffer.alloc(padding));
  }

  private async flush(): Promise<void> {
    if (this.handle === null || this.pendingBytes === 0) return;
    const chunk = Buffer.concat(this.pending, this.pendingBytes);
    await this.handle.write(chunk, 0, chunk.length);
    this.written += chunk.length;
    this.pending = [];
    this.pendingBytes = 0;
  }
}

// ---------------------------------------------------------------- header helpers

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

function checksumOk(header: Buffer): boolean {
  const stored = parseNumber(header, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 32 : header[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

function parseNumber(header: Buffer, offset: number, length: number): number {
  const first = header[offset]!;
  if (first & 0x80) {
    // base-256 (GNU) for large values
    let value = first & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + header[offset + i]!;
    return value;
  }
  const text = header.toString('latin1', offset, offset + length).replace(/[\0 ]+.*$|^\s+/g, '');
  return text.length === 0 ? 0 : Number.parseInt(text, 8);
}

function headerName(header: Buffer): string {
  const cstring = (offset: number, length: number): string => {
    const end = header.indexOf(0, offset);
    const stop = end === -1 || end > offset + length ? offset + length : end;
    return header.toString('utf8', offset, stop);
  };
  const name = cstring(0, 100);
  const magic = header.toString('latin1', 257, 262);
  const prefix = magic === 'ustar' ? cstring(345, 155) : '';
  return prefix.length > 0 ? `${prefix}/${name}` : name;
}

function parsePax(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    if (space === -1) break;
    const length = Number.parseInt(body.toString('latin1', pos, space), 10);
    if (!Number.isFinite(length) || length <= 0) break;
    const record = body.toString('utf8', space + 1, pos + length - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += length;
  }
  return out;
}

function paxRecord(key: string, value: string): Buffer {
  const payload = ` ${key}=${value}\n`;
  const payloadBytes = Buffer.byteLength(payload, 'utf8');
  let length = payloadBytes + String(payloadBytes).length;
  if (String(length).length + payloadBytes !== length) length += 1;
  return Buffer.from(`${length}${payload}`, 'utf8');
}

function asciiTail(name: string): string {
  return name.replace(/[^\x20-\x7e]/g, '_').slice(-100);
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function makeHeader(
  name: string,
  size: number,
  type: string,
  options: Required<TarWriterOptions>,
): Buffer {
  const header = Buffer.alloc(BLOCK);
  header.write(name, 0, 100, 'utf8');
  header.write(octal(options.mode, 8), 100, 'latin1');
  header.write(octal(0, 8), 108, 'latin1');
  header.write(octal(0, 8), 116, 'latin1');
  if (size < 8 ** 11) {
    header.write(octal(size, 12), 124, 'latin1');
  } else {
    header[124] = 0x80;
    let v = size;
    for (let i = 11; i > 0; i--) {
      header[124 + i] = v % 256;
      v = Math.floor(v / 256);
    }
  }
  header.write(octal(Math.floor(options.mtime), 12), 136, 'latin1');
  header.write('        ', 148, 'latin1');
  header.write(type, 156, 'latin1');
  header.write('ustar\0', 257, 'latin1');
  header.write('00', 263, 'latin1');
  header.write(options.uname.slice(0, 31), 265, 'latin1');
  header.write(options.gname.slice(0, 31), 297, 'latin1');
  header.write(octal(0, 8), 329, 'latin1');
  header.write(octal(0, 8), 337, 'latin1');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += header[i]!;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return header;
}
