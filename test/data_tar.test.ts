// Tar reading and writing, WebDataset grouping and the .pyd reader, including archives and
// pickles written by Python's tarfile and pickle (the reference's tooling), and ours read
// back by Python.

import assert from 'node:assert/strict';
import { readFileSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { BrokenInputLog, DataError, type BrokenInput } from '../src/data/broken.js';
import { pickle, unpickle, UnpicklingError } from '../src/data/pyd.js';
import { listTar, readTar, TarFormatError, TarWriter } from '../src/data/tar.js';
import {
  decodeField, groupMembers, readShardSamples, sampleImage, sampleLabel, splitMemberName,
} from '../src/data/webdataset.js';
import { pythonHas, runPython, tempDir, writeShard } from './data_helpers.js';

const dir = tempDir('tar');
after(() => dir.remove());
const noPython = pythonHas('tarfile', 'pickle') ? false : 'needs /usr/bin/python3';

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

describe('tar', () => {
  it('round-trips members of any size, long and non-ASCII names included', async () => {
    const path = join(dir.path, 'round.tar');
    const members: [string, Buffer][] = [
      ['a.txt', Buffer.from('hello')],
      ['empty.bin', Buffer.alloc(0)],
      ['exact.bin', Buffer.alloc(512, 7)],
      ["big.bin", Buffer.from(new Uint8Array(3 << 20).map((_, i) => i & 255))],
      [`${'d/'.repeat(60)}long-name.jpg`, Buffer.from('long')],
      ['ünïcode.txt', Buffer.from('u')],
    ];
    const writer = await TarWriter.create(path, { mtime: 1234567890 });
    for (const [name, data] of members) await writer.add(name, data);
    await writer.close();
    assert.equal(statSync(path).size % 10240, 0, 'padded to tarfile record size');

    const read = await collect(readTar(path, { chunkSize: 4096 }));
    assert.deepEqual(read.map((e) => e.name), members.map(([n]) => n));
    read.forEach((e, i) => assert.ok(e.data.equals(members[i]![1]), `data of ${e.name}`));
    assert.equal(read[0]!.mtime, 1234567890);
    assert.equal(read[0]!.mode, 0o444);
    assert.deepEqual((await listTar(path)).map((e) => e.size), members.map(([, d]) => d.length));
  });

  it('reports a truncated archive after yielding its complete members', async () => {
    const path = join(dir.path, 'cut.tar');
    await writeShard(path, [0, 1, 2].map((i) => ({ key: `k${i}`, members: { bin: Buffer.alloc(2000, i) } })));
    truncateSync(path, 512 + 2048 + 512 + 1000); // inside the second member's data
    const seen: string[] = [];
    await assert.rejects(async () => {
      for await (const entry of readTar(path)) seen.push(entry.name);
    }, TarFormatError);
    assert.deepEqual(seen, ['k0.bin']);
    await assert.rejects(listTar(path), TarFormatError);
  });

  it('writes archives that Python tarfile reads (names, sizes, mtime, data)', { skip: noPython }, async () => {
    const path = join(dir.path, 'for-python.tar');
    const writer = await TarWriter.create(path, { mtime: 1700000000 });
    await writer.add('n01440764_10026.image.jpg', Buffer.from('jpegbytes'));
    await writer.add('n01440764_10026.cls', Buffer.from('0'));
    await writer.add(`${'x'.repeat(120)}.txt`, Buffer.from('long'));
    await writer.close();
    const out = runPython(['-c', `
import tarfile, json, sys
with tarfile.open(sys.argv[1]) as t:
    print(json.dumps([[m.name, m.size, m.mtime, m.mode, t.extractfile(m).read().decode()] for m in t]))
`, path]);
    assert.deepEqual(JSON.parse(out), [
      ['n01440764_10026.image.jpg', 9, 1700000000, 0o444, 'jpegbytes'],
      ['n01440764_10026.cls', 1, 1700000000, 0o444, '0'],
      [`${'x'.repeat(120)}.txt`, 4, 1700000000, 0o444, 'long'],
    ]);
  });

  it('reads shards written by Python tarfile as webdataset does, pax long names included', { skip: noPython }, async () => {
    const path = join(dir.path, 'from-python.tar');
    runPython(['-c', `
import io, pickle, sys, tarfile, time
def add(t, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data); info.mtime = time.time(); info.mode = 0o444
    info.uname = info.gname = 'bigdata'
    t.addfile(info, io.BytesIO(data))
with tarfile.open(sys.argv[1], 'w') as t:
    for i, (key, wnid) in enumerate([('n01440764_1', 'n01440764'), ('n01443537_2', 'n01443537')]):
        add(t, key + '.image.jpg', b'JPEG%d' % i)
        add(t, key + '.metadata.pyd', pickle.dumps({'cls': i, 'wnid': wnid}))
    add(t, 'dir/' + 'y' * 150 + '.cls', b'7')
    add(t, 'dir/' + 'y' * 150 + '.txt', 'héllo'.encode())
`, path]);
    const samples = await collect(groupMembers(readTar(path), path));
    assert.deepEqual(samples.map((s) => s.key), ['n01440764_1', 'n01443537_2', `dir/${'y'.repeat(150)}`]);
    assert.equal(sampleLabel(samples[1]!), 1);
    assert.deepEqual(decodeField('metadata.pyd', samples[1]!.fields.get('metadata.pyd')!),
      { cls: 1, wnid: 'n01443537' });
    assert.equal(sampleImage(samples[0]!)!.field, 'image.jpg');
    assert.equal(sampleLabel(samples[2]!), 7);
    assert.equal(decodeField('txt', samples[2]!.fields.get('txt')!), 'héllo');
  });
});

describe('webdataset conventions', () => {
  it('splits member names at the first dot of the base name', () => {
    assert.deepEqual(splitMemberName('n01440764_10026.image.jpg'), { key: 'n01440764_10026', field: 'image.jpg' });
    assert.deepEqual(splitMemberName('a/b.c/key.CLS'), { key: 'a/b.c/key', field: 'cls' });
    assert.equal(splitMemberName('noextension'), null);
  });

  it('groups consecutive members; decodes cls, json, txt and pyd fields', async () => {
    const path = join(dir.path, 'group.tar');
    await writeShard(path, [
      { key: 's0', members: { jpg: 'x', cls: '3' } },
      { key: 's1', members: { png: 'y', json: '{"cls": 5}', txt: 'caption' } },
      { key: 's2', members: { 'image.webp': 'z', 'metadata.pyd': pickle({ cls: 9, wnid: 'n0' }) } },
      { key: 's3', members: { jpeg: 'w' } },
    ]);
    const samples = await collect(groupMembers(readTar(path), path));
    assert.deepEqual(samples.map((s) => [...s.fields.keys()]),
      [['jpg', 'cls'], ['png', 'json', 'txt'], ['image.webp', 'metadata.pyd'], ['jpeg']]);
    assert.deepEqual(samples.map(sampleLabel), [3, 5, 9, null]);
    assert.deepEqual(samples.map((s) => sampleImage(s)?.field), ['jpg', 'png', 'image.webp', 'jpeg']);
  });

  it('strides a shard between readers and reports truncation as truncatedTar', async () => {
    const path = join(dir.path, 'stride.tar');
    await writeShard(path, Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, members: { cls: String(i) } })));
    const log = new BrokenInputLog({ onWarning: () => {} });
    const parts = await Promise.all([0, 1, 2].map(async (rem) =>
      (await collect(readShardSamples(path, log, { mod: 3, rem }))).map(sampleLabel)));
    assert.deepEqual(parts, [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]);

    truncateSync(path, 512 * 2 * 6 + 100);
    const warnings: BrokenInput[] = [];
    const kept = await collect(readShardSamples(path, new BrokenInputLog({ onWarning: (w) => warnings.push(w) })));
    assert.deepEqual(kept.map(sampleLabel), [0, 1, 2, 3, 4]);
    assert.equal(warnings[0]!.kind, 'truncatedTar');
    assert.equal(warnings[0]!.file, path);
    assert.ok(!warnings[0]!.message.includes(path), 'the path is said once, not again in the message');
    await assert.rejects(collect(readShardSamples(path, new BrokenInputLog({ strict: true }))), DataError);
  });
});

describe('pyd (safe pickle subset)', () => {
  it('reads what Python pickles with protocols 2 to 5', { skip: noPython }, () => {
    const out = runPython(['-c', `
import pickle, sys
value = {'cls': 417, 'wnid': 'n02504458', 'neg': -5, 'big': 2**40, 'huge': 2**70, 'f': 0.25,
         'list': [1, 'two', None, True, False], 'tuple': (1, 2), 'nested': {'a': [{}]}, 'b': b'\\x00\\x01',
         'long': 'x' * 300}
for p in (2, 3, 4, 5):
    # protocol 2 pickles bytes through a call of _codecs.encode, which is refused
    v = {k: x for k, x in value.items() if p > 2 or k != 'b'}
    sys.stdout.write(pickle.dumps(v, protocol=p).hex() + '\\n')
`]);
    const lines = out.trim().split('\n');
    assert.equal(lines.length, 4);
    for (const line of lines) {
      const value = unpickle(Buffer.from(line, 'hex')) as Record<string, unknown>;
      assert.equal(value.cls, 417);
      assert.equal(value.wnid, 'n02504458');
      assert.equal(value.neg, -5);
      assert.equal(value.big, 2 ** 40);
      assert.equal(value.huge, 2n ** 70n);
      assert.equal(value.f, 0.25);
      assert.deepEqual(value.list, [1, 'two', null, true, false]);
      assert.deepEqual(value.tuple, [1, 2]);
      assert.deepEqual(value.nested, { a: [{}] });
      if ('b' in value) assert.deepEqual(value.b, Uint8Array.of(0, 1));
      assert.equal(value.long, 'x'.repeat(300));
    }
  });

  it('refuses pickles that would import or call code', { skip: noPython }, () => {
    const out = runPython(['-c', `
import pickle, collections, os
class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))
print(pickle.dumps(Evil(), protocol=2).hex())
print(pickle.dumps(collections.OrderedDict(a=1), protocol=4).hex())
print(pickle.dumps({'x': {1, 2}}, protocol=4).hex())
`]);
    const [evil, ordered, withSet] = out.trim().split('\n');
    assert.throws(() => unpickle(Buffer.from(evil!, 'hex')), /refusing opcode (GLOBAL|STACK_GLOBAL)/);
    assert.throws(() => unpickle(Buffer.from(ordered!, 'hex')), UnpicklingError);
    assert.throws(() => unpickle(Buffer.from(withSet!, 'hex')), /unsupported opcode/);
    assert.throws(() => unpickle(Uint8Array.of(0x80, 4, 0x7d)), /truncated|underflow/);
  });

  it('writes pickles that Python reads', { skip: noPython }, () => {
    const bytes = pickle({ cls: 3, wnid: 'n01440764', big: 2 ** 40, neg: -70000, f: 1.5, l: [null, true] });
    writeFileSync(join(dir.path, 'ours.pyd'), bytes);
    const out = runPython(['-c', `
import pickle, sys, json
print(json.dumps(pickle.load(open(sys.argv[1], 'rb'))))
`, join(dir.path, 'ours.pyd')]);
    const expected = { cls: 3, wnid: 'n01440764', big: 2 ** 40, neg: -70000, f: 1.5, l: [null, true] };
    assert.deepEqual(JSON.parse(out), expected);
    assert.deepEqual(unpickle(readFileSync(join(dir.path, 'ours.pyd'))), JSON.parse(out));
  });
});
