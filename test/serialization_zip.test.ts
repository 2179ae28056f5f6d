// The ZIP layer: PyTorch's layout (64-byte aligned records), zip64, deflate, and archives that
// Python's zipfile writes and reads.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { crc32, SerializationError, writeZip, ZipReader, zipChunks } from '../src/torch/serialization/index.js';
import { makeTempDir, PEER_PYTHON, peerSkipReason } from './serialization_peer.js';

const entries = [
  { name: 'archive/data.pkl', data: Uint8Array.from({ length: 1000 }, (_, i) => i % 251) },
  { name: 'archive/data/0', data: new Uint8Array(0) },
  { name: 'archive/data/1', data: Uint8Array.of(1, 2, 3) },
  { name: 'archive/version', data: Uint8Array.of(0x33, 0x0a) },
];

function dataOffset(zip: Uint8Array, name: string): number {
  const reader = new ZipReader(zip, 'z');
  const data = reader.read(name);
  return data.byteOffset - zip.byteOffset;
}

describe('zip writer and reader', () => {
  const temp = makeTempDir('groco-zip-');
  after(() => temp.remove());

  for (const forceZip64 of [false, true]) {
    test(`entries read back${forceZip64 ? ' with zip64 records' : ''}, data aligned to 64 bytes`, () => {
      const zip = writeZip(entries, { forceZip64 });
      const reader = new ZipReader(zip, 'z.zip');
      assert.deepEqual([...reader.entries.keys()], entries.map((e) => e.name));
      for (const entry of entries) {
        assert.deepEqual(reader.read(entry.name), entry.data);
        assert.equal(dataOffset(zip, entry.name) % 64, 0);
      }
      // stored records are views of the archive, not copies
      assert.equal(reader.read('archive/data/1').buffer, zip.buffer);
    });
  }

  test('the chunks are the archive, with the entry data not copied', () => {
    const chunks = zipChunks(entries);
    assert.ok(chunks.includes(entries[0].data));
    assert.deepEqual(new Uint8Array(Buffer.concat(chunks)), writeZip(entries));
  });

  const skip = peerSkipReason();
  test("Python's zipfile reads ours and we read its deflated zip64 archives", { skip }, () => {
    const ours = join(temp.dir, 'ours.zip');
    const ours64 = join(temp.dir, 'ours64.zip');
    const theirs = join(temp.dir, 'theirs.zip');
    writeFileSync(ours, writeZip(entries));
    writeFileSync(ours64, writeZip(entries, { forceZip64: true }));
    const script = `
import sys, zipfile
for path in sys.argv[1:3]:
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        print(path, [(i.filename, i.file_size) for i in z.infolist()])
with zipfile.ZipFile(sys.argv[3], 'w', zipfile.ZIP_DEFLATED) as z:
    with z.open('a/data.pkl', 'w', force_zip64=True) as f:
        f.write(bytes(range(256)) * 100)
    z.writestr('a/version', '3\\n')
    z.comment = b'a comment after the end record'
`;
    const python = spawnSync(PEER_PYTHON, ['-c', script, ours, ours64, theirs], { encoding: 'utf8' });
    assert.equal(python.status, 0, python.stderr);
    assert.match(python.stdout, /ours64\.zip \[\('archive\/data\.pkl', 1000\)/);

    const reader = new ZipReader(readFileSync(theirs), 'theirs.zip');
    const data = reader.read('a/data.pkl');
    assert.equal(data.length, 25600);
    assert.equal(crc32(data), reader.entries.get('a/data.pkl')!.crc32);
    assert.equal(reader.entries.get('a/data.pkl')!.method, 8);
  });

  test('corruption is reported with the file name', () => {
    const zip = Buffer.from(writeZip(entries));
    const at = dataOffset(zip, 'archive/data/1');
    const corrupt = Buffer.from(zip);
    corrupt[at] ^= 1;
    const check = (bytes: Uint8Array, pattern: RegExp) =>
      assert.throws(
        () => {
          const reader = new ZipReader(bytes, 'bad.zip');
          for (const name of reader.entries.keys()) reader.read(name);
        },
        (error: Error) => error instanceof SerializationError && pattern.test(error.message),
      );

    check(corrupt, /^bad\.zip: zip: entry 'archive\/data\/1' fails its CRC-32 check/);
    assert.deepEqual(new ZipReader(corrupt, 'bad.zip', { verifyCrc: false }).read('archive/data/1'), Uint8Array.of(0, 2, 3));
    check(new Uint8Array(10), /10 bytes is too short for a zip archive/);
    check(zip.subarray(0, zip.length - 1), /no end of central directory record/);

    const directory = zip.readUInt32LE(zip.length - 6);
    const encrypted = Buffer.from(zip);
    encrypted.writeUInt16LE(1, directory + 8);
    check(encrypted, /is encrypted/);
    const method = Buffer.from(zip);
    method.writeUInt16LE(12, directory + 10);
    check(method, /uses compression method 12 \(only 0 and 8\)/);
    // central entries: 46 bytes and the name each; entry 1 names 'archive/data/0'
    const second = directory + 46 + 'archive/data.pkl'.length;
    const third = second + 46 + 'archive/data/0'.length;
    const duplicate = Buffer.from(zip);
    duplicate.write('archive/data/1', second + 46, 'latin1');
    check(duplicate, /entry 'archive\/data\/1' appears twice/);
    const missing = Buffer.from(zip);
    missing.writeUInt32LE(0, zip.readUInt32LE(third + 42));
    check(missing, /local header of .* is missing/);
  });
});
