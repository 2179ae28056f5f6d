// Hostile and broken checkpoints: code in pickles, truncation at every byte, random bytes, sizes
// that promise more than the file holds, and deep nesting. Each must fail fast with an error that
// starts with the file name, and nothing in the file may run.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { after, describe, test } from 'node:test';

import {
  readCheckpoint,
  SerializationError,
  writeCheckpoint,
  writeZip,
} from '../src/torch/serialization/index.js';
import type { TensorRecord } from '../src/torch/serialization/index.js';
import { CORPUS_DIR, makeTempDir, PEER_PYTHON, peerSkipReason, random } from './serialization_peer.js';

const latin1 = (text: string): Uint8Array => Uint8Array.from(text, (ch) => ch.charCodeAt(0));

function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** The legacy format's header pickles: magic number, protocol version, system info. */
const LEGACY_HEADER = concat(
  Uint8Array.of(0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e),
  Uint8Array.of(0x80, 2, 0x4d, 0xe9, 0x03, 0x2e),
  latin1('\x80\x02}X\x0d\x00\x00\x00little_endian\x88s.'),
);

/** Reading fails with a SerializationError that starts with the file name and matches. */
function fails(bytes: Uint8Array, name: string, pattern?: RegExp): number {
  const started = performance.now();
  assert.throws(
    () => readCheckpoint(bytes, name),
    (error: Error) => {
      assert.ok(error instanceof SerializationError, `${name}: not a SerializationError: ${error.stack}`);
      assert.ok(error.message.startsWith(`${name}: `), error.message);
      if (pattern) assert.match(error.message, pattern);
      return true;
    },
  );
  return performance.now() - started;
}

function corpus(name: string): Uint8Array {
  return readFileSync(join(CORPUS_DIR, name));
}

function smallCheckpoint(): Uint8Array {
  const data = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
  return writeCheckpoint(
    new Map<string, unknown>([
      ['weight', { kind: 'tensor', dtype: 'float32', shape: [2, 3], data }],
      ['step', 10],
    ]),
  );
}

describe('code in a pickle never runs', () => {
  const temp = makeTempDir('groco-hostile-');
  after(() => temp.remove());

  for (const container of ['pickle', 'legacy', 'zip']) {
    test(`os.system in a ${container} file is refused by name`, () => {
      const marker = join(temp.dir, `ran-${container}`);
      const command = `touch ${marker}`;
      const payload = concat(
        latin1('\x80\x02cos\nsystem\nX'),
        Uint8Array.of(command.length, 0, 0, 0),
        latin1(command),
        latin1('\x85R.'),
      );
      const file =
        container === 'pickle'
          ? payload
          : container === 'legacy'
            ? concat(LEGACY_HEADER, payload, latin1('\x80\x02].'))
            : writeZip([{ name: 'archive/data.pkl', data: payload }]);
      fails(file, `${container}.pth`, /refusing to load pickle global 'os\.system'/);
      assert.equal(existsSync(marker), false);

      // the payload is real: Python's own unpickler runs it
      if (container === 'pickle' && !peerSkipReason()) {
        const script = 'import pickle, sys; pickle.loads(sys.stdin.buffer.read())';
        const python = spawnSync(PEER_PYTHON, ['-c', script], { input: payload });
        assert.equal(python.status, 0);
        assert.equal(existsSync(marker), true);
      }
    });
  }

  test('the hostile files of the corpus are refused by name', () => {
    fails(corpus('os_system.pkl'), 'os_system.pkl', /not a PyTorch checkpoint/); // no legacy header
    fails(corpus('os_system_legacy.pth'), 'a.pth', /'os\.system'/);
    fails(corpus('os_system_zip.pth'), 'b.pth', /'os\.system'/);
    fails(corpus('whole_model.pth'), 'c.pth', /'torch\.nn\.modules\.linear\.Linear'.*state_dict/);
    fails(corpus('torchscript.pt'), 'd.pt', /TorchScript archive/);
  });
});

describe('broken files fail fast with the file name', () => {
  const valid = [
    'zip_state_dict.pth',
    'legacy_state_dict.pth',
    'zip_protocol4.pth',
    'legacy_views.pth',
    'zip_views.pth',
    'zip_deflated.pth',
  ];

  test('every valid corpus file reads', () => {
    for (const name of valid) assert.ok(readCheckpoint(corpus(name), name) instanceof Map);
  });

  test('truncated at every byte', () => {
    let slowest = 0;
    let cuts = 0;
    for (const name of [...valid, 'small.pth']) {
      const bytes = name === 'small.pth' ? smallCheckpoint() : corpus(name);
      for (let cut = 0; cut < bytes.length; cut++) {
        slowest = Math.max(slowest, fails(bytes.subarray(0, cut), name));
        cuts++;
      }
    }
    assert.ok(cuts > 10_000);
    assert.ok(slowest < 200, `slowest ${slowest.toFixed(1)} ms`);
  });

  test('random bytes, bare and behind valid-looking starts', () => {
    const next = random(7);
    const starts = [new Uint8Array(0), latin1('PK\x03\x04'), LEGACY_HEADER, latin1('\x80\x02')];
    for (let i = 0; i < 2000; i++) {
      const body = Uint8Array.from({ length: Math.floor(next() * 600) }, () => Math.floor(next() * 256));
      fails(concat(starts[i % starts.length], body), `random-${i}.pth`);
    }
  });

  test('sizes that promise more than the file holds', () => {
    const checkpoint = smallCheckpoint();
    const buf = Buffer.from(checkpoint);
    const end = buf.length - 22;
    const directory = buf.readUInt32LE(end + 16);

    // a record claiming 4 GB of data
    const huge = Buffer.from(buf);
    huge.writeUInt32LE(0xfffffff0, directory + 20);
    huge.writeUInt32LE(0xfffffff0, directory + 24);
    fails(huge, 'huge-record.pth', /runs into the central directory/);

    // a central directory beyond the end of the file
    const far = Buffer.from(buf);
    far.writeUInt32LE(0x7fffffff, end + 16);
    fails(far, 'far.pth', /central directory .* runs past its end record/);

    // more entries than the directory can hold
    const many = Buffer.from(buf);
    many.writeUInt16LE(0xfffe, end + 10);
    fails(many, 'many.pth', /65534 entries cannot fit/);

    // a storage bigger than the file
    fails(corpus('huge_storage_legacy.pth'), 'legacy.pth', /declares 1099511627776 float32 elements/);
    fails(corpus('tensor_out_of_bounds.pth'), 'view.pth', /reaches past the end of its storage of 2/);
  });

  test('a zip bomb stops at the inflation limit before inflating', () => {
    const zeros = new Uint8Array(64 * 1024 * 1024);
    const deflated = deflateRawSync(zeros);
    assert.ok(deflated.length < 100_000);
    const zip = buildDeflatedZip('archive/data.pkl', deflated, zeros.length);
    const started = performance.now();
    assert.throws(
      () => readCheckpoint(zip, 'bomb.pth', { maxInflatedBytes: 1024 * 1024 }),
      /bomb\.pth: zip: entry 'archive\/data\.pkl' would inflate to 67108864 bytes, past the limit of 1048576/,
    );
    assert.ok(performance.now() - started < 100);
  });

  test('the legacy storage section is checked against the declared sizes', () => {
    const bytes = Buffer.from(corpus('legacy_views.pth'));
    // the storages end the file, each an 8-byte element count and its bytes
    const storages = new Set<Uint8Array>();
    for (const value of (readCheckpoint(bytes, 'views.pth') as Map<string, unknown>).values()) {
      const storage = (value as Partial<TensorRecord>).storage;
      if (storage) storages.add(storage.data);
    }
    assert.equal(storages.size, 3);
    let keysEnd = bytes.length;
    for (const data of storages) keysEnd -= 8 + data.byteLength;
    const count = bytes.readBigInt64LE(keysEnd);
    const wrong = Buffer.from(bytes);
    wrong.writeBigInt64LE(count + 1n, keysEnd);
    fails(wrong, 'count.pth', new RegExp(`has ${count + 1n} elements in the file, but ${count} were declared`));
    fails(bytes.subarray(0, keysEnd + 4), 'cut.pth', /truncated file: storage .* should start at byte/);
  });

  test('100k nested lists in a checkpoint fail fast', () => {
    const deep = 100_000;
    const lists = new Uint8Array(deep).fill(0x5d); // EMPTY_LIST
    const appends = new Uint8Array(deep - 1).fill(0x61); // APPEND
    const payload = concat(latin1('\x80\x02'), lists, appends, latin1('.'));
    const file = concat(LEGACY_HEADER, payload, latin1('\x80\x02].'));
    const ms = fails(file, 'deep.pth', /nesting deeper than the limit of 1000/);
    assert.ok(ms < 1000, `${ms} ms`);
    const laughs = writeZip([{ name: 'archive/data.pkl', data: corpus('billion_laughs.pkl') }]);
    fails(laughs, 'laughs.pth', /counting shared parts/);
  });

  test('each corpus file reads or fails with a SerializationError', () => {
    for (const name of readdirSync(CORPUS_DIR)) {
      if (name.endsWith('.py') || name.endsWith('.md')) continue;
      try {
        readCheckpoint(corpus(name), name);
      } catch (error) {
        assert.ok(error instanceof SerializationError && error.message.startsWith(`${name}: `), String(error));
      }
    }
  });
});

/** A one-entry zip archive with a deflated record (as other zip writers may produce). */
function buildDeflatedZip(name: string, deflated: Uint8Array, size: number): Uint8Array {
  const nameBytes = Buffer.from(name);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt16LE(8, 8);
  local.writeUInt32LE(deflated.length, 18);
  local.writeUInt32LE(size, 22);
  local.writeUInt16LE(nameBytes.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 6);
  central.writeUInt16LE(8, 10);
  central.writeUInt32LE(deflated.length, 20);
  central.writeUInt32LE(size, 24);
  central.writeUInt16LE(nameBytes.length, 28);
  const offset = local.length + nameBytes.length + deflated.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + nameBytes.length, 12);
  end.writeUInt32LE(offset, 16);
  return concat(local, nameBytes, deflated, central, nameBytes, end);
}
