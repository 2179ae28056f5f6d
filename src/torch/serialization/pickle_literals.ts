// Decoders for the literal encodings inside pickles: integers of LONG1/LONG4 and the text
// arguments of protocol 0 (INT, LONG, FLOAT, STRING, UNICODE).

import { Buffer } from 'node:buffer';

import { normalizeInt } from './values.js';

/** Little-endian two's complement integer of `n` bytes (LONG1 / LONG4). */
export function decodeLong(buf: Buffer, start: number, n: number): number | bigint {
  if (n === 0) return 0;
  if (n <= 6) return buf.readIntLE(start, n);
  const hex = Buffer.from(buf.subarray(start, start + n)).reverse().toString('hex');
  let value = BigInt('0x' + hex);
  if (buf[start + n - 1] & 0x80) value -= 1n << BigInt(8 * n);
  return normalizeInt(value);
}

export function parseTextFloat(line: string): number {
  const text = line.trim().toLowerCase();
  if (/^[+-]?(inf|infinity)$/.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (/^[+-]?nan$/.test(text)) return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(text)) {
    throw new Error(`invalid float literal ${JSON.stringify(line.slice(0, 40))}`);
  }
  return Number(text);
}

/** Decodes a Python 2 `repr(str)` literal (STRING opcode) and reads its bytes as UTF-8. */
export function decodeStringLiteral(line: string): string {
  const quote = line[0];
  if (line.length < 2 || (quote !== "'" && quote !== '"') || line[line.length - 1] !== quote) {
    throw new Error('STRING argument is not a quoted literal');
  }
  const body = line.slice(1, -1);
  const bytes: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (ch !== '\\') {
      bytes.push(ch.charCodeAt(0)); // the line was read as latin1: one char per byte
      continue;
    }
    const next = body[++i];
    const simple: Record<string, number> = {
      '\\': 0x5c, "'": 0x27, '"': 0x22, n: 0x0a, t: 0x09, r: 0x0d, a: 0x07, b: 0x08, f: 0x0c,
      v: 0x0b, '0': 0,
    };
    if (next === 'x' && /^[0-9a-fA-F]{2}$/.test(body.slice(i + 1, i + 3))) {
      bytes.push(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (next !== undefined && next in simple) {
      bytes.push(simple[next]);
    } else {
      throw new Error(`unsupported escape in STRING literal: \\${next ?? ''}`);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * Decodes Python's raw-unicode-escape (UNICODE opcode), given the line as latin1: bytes stand
 * for themselves, except the escapes \uXXXX and \UXXXXXXXX.
 */
export function decodeRawUnicodeEscape(line: string): string {
  return line.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, short, long) => {
    const code = parseInt(short ?? long, 16);
    if (code > 0x10ffff) throw new Error('invalid code point in UNICODE literal');
    return String.fromCodePoint(code);
  });
}
