// TensorBoard event files: TFRecord framing (length, masked CRC-32C) around hand-encoded Event
// protocol buffers holding scalar summaries. Enough for TensorBoard's scalar dashboard.
import { closeSync, openSync, writeSync, fsyncSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function maskedCrc(data: Uint8Array): number {
  const crc = crc32c(data);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

function varint(value: number | bigint): number[] {
  let v = BigInt(value);
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

function lengthDelimited(field: number, bytes: Uint8Array | number[]): number[] {
  return [(field << 3) | 2, ...varint(bytes.length), ...bytes];
}

function encodeEvent(wallTime: number, step: number, body: number[]): Uint8Array {
  const wall = Buffer.alloc(8);
  wall.writeDoubleLE(wallTime);
  return Uint8Array.from([0x09, ...wall, 0x10, ...varint(step), ...body]);
}

function scalarSummary(tag: string, value: number): number[] {
  const f = Buffer.alloc(4);
  f.writeFloatLE(value);
  const summaryValue = [...lengthDelimited(1, Buffer.from(tag, 'utf8')), 0x15, ...f];
  return lengthDelimited(5, lengthDelimited(1, summaryValue));
}

export class EventWriter {
  readonly path: string;
  readonly #fd: number;

  constructor(dir: string) {
    this.path = join(dir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${hostname()}`);
    this.#fd = openSync(this.path, 'a');
    const version = lengthDelimited(3, Buffer.from('brain.Event:2', 'utf8'));
    this.#write(encodeEvent(Date.now() / 1000, 0, version));
  }

  #write(event: Uint8Array): void {
    const header = Buffer.alloc(12);
    header.writeBigUInt64LE(BigInt(event.length), 0);
    header.writeUInt32LE(maskedCrc(header.subarray(0, 8)), 8);
    const footer = Buffer.alloc(4);
    footer.writeUInt32LE(maskedCrc(event), 0);
    writeSync(this.#fd, Buffer.concat([header, event, footer]));
  }

  scalar(tag: string, value: number, step: number): void {
    if (!Number.isFinite(value)) return;
    this.#write(encodeEvent(Date.now() / 1000, step, scalarSummary(tag, value)));
  }

  flush(): void {
    fsyncSync(this.#fd);
  }

  close(): void {
    closeSync(this.#fd);
  }
}
