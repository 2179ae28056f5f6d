// Shared by the serialization tests: the PyTorch peer (a Python with torch) and a description of
// values that both sides compute the same way, so that they can be compared as JSON.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  contiguousStride,
  isContiguousTensorRecord,
  isTensorRecord,
  OrderedDict,
  PyFloat,
  PyObject,
  PyTuple,
  tensorBytes,
} from '../src/torch/serialization/index.js';
import type { StorageRecord } from '../src/torch/serialization/index.js';

/** The Python that has torch; the tests that need it are skipped when it is missing. */
export const PEER_PYTHON = process.env.GROCO_PEER_PYTHON ?? '/usr/bin/python3';

export const CORPUS_DIR = fileURLToPath(new URL('../../test/fixtures/pickle_corpus/', import.meta.url));

let peerChecked: boolean | undefined;

/** Whether the peer Python imports torch; the reason to skip when it does not. */
export function peerSkipReason(): string | false {
  if (peerChecked === undefined) {
    const result = spawnSync(PEER_PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
    peerChecked = result.status === 0;
  }
  return peerChecked ? false : `no PyTorch peer at ${PEER_PYTHON} (set GROCO_PEER_PYTHON)`;
}

export function makeTempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Loaded {
  descriptions: Description[];
  /** Python type names of the top-level dict values of each file. */
  types: Record<string, string>[];
}

/** Loads files with torch.load in the peer and describes them. */
export function describeWithPeer(dir: string, files: string[], timeoutMs?: number): Loaded {
  return JSON.parse(runPeer(dir, ['describe', ...files], timeoutMs)) as Loaded;
}

/** Runs the peer script with arguments; returns its stdout, throws with stderr on failure. */
export function runPeer(dir: string, args: string[], timeoutMs = 120_000): string {
  const script = join(dir, 'peer.py');
  writeFileSync(script, PEER_SCRIPT);
  const result = spawnSync(PEER_PYTHON, [script, ...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.status !== 0) {
    throw new Error(`peer ${args[0]} failed (${result.status}): ${result.stderr || result.error}`);
  }
  return result.stdout;
}

/** Deterministic numbers in [0, 1) from a seed (mulberry32). */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function sha(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 24);
}

export interface Description {
  value: unknown;
  storages: string[];
}

/**
 * The description that the peer's `describe` gives of the same value: tensors by dtype, shape,
 * stride, offset, a hash of their elements and the index of their storage (in order of first
 * use), so that sharing is compared too.
 */
export function describeValue(root: unknown): Description {
  const storageIndex = new Map<object, number>();
  const storages: string[] = [];

  const storageOf = (key: object, data: Uint8Array): number => {
    let index = storageIndex.get(key);
    if (index === undefined) {
      index = storages.length;
      storageIndex.set(key, index);
      storages.push(sha(data));
    }
    return index;
  };

  const entries = (map: Map<unknown, unknown>): unknown[] =>
    [...map].map(([k, v]) => [walk(k), walk(v)]);

  const walk = (value: unknown): unknown => {
    if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
    if (typeof value === 'number' || value instanceof PyFloat) {
      const x = typeof value === 'number' ? value : value.value;
      if (Number.isNaN(x)) return { float: 'nan' };
      if (!Number.isFinite(x)) return { float: x > 0 ? 'inf' : '-inf' };
      return x;
    }
    if (typeof value === 'bigint') {
      return value >= -(2n ** 53n - 1n) && value <= 2n ** 53n - 1n ? Number(value) : { int: String(value) };
    }
    if (isTensorRecord(value)) {
      return {
        tensor: {
          dtype: value.dtype,
          shape: value.shape,
          stride: value.stride,
          offset: value.storageOffset,
          requires_grad: value.requiresGrad,
          parameter: value.parameter === true,
          storage: storageOf(value.storage as StorageRecord, value.storage.data),
          sha: sha(tensorBytes(value)),
        },
      };
    }
    if (isContiguousTensorRecord(value)) {
      return {
        tensor: {
          dtype: value.dtype,
          shape: value.shape,
          stride: contiguousStride(value.shape),
          offset: 0,
          requires_grad: value.requiresGrad ?? false,
          parameter: value.parameter === true,
          storage: storageOf(value.data, value.data),
          sha: sha(value.data),
        },
      };
    }
    if (value instanceof Uint8Array) return { bytes: Buffer.from(value).toString('hex') };
    if (value instanceof PyTuple) return { tuple: value.map(walk) };
    if (Array.isArray(value)) return { list: value.map(walk) };
    if (value instanceof OrderedDict) {
      const metadata = value.attributes?.get('_metadata');
      return metadata === undefined
        ? { odict: entries(value) }
        : { odict: entries(value), metadata: walk(metadata) };
    }
    if (value instanceof Map) return { dict: entries(value) };
    if (value instanceof Set) {
      return { set: [...value].map((v) => JSON.stringify(walk(v))).sort() };
    }
    if (value instanceof PyObject) return { namespace: entries(value.state) };
    throw new Error(`describeValue: cannot describe ${String(value)}`);
  };

  return { value: walk(root), storages };
}

// The peer: `make DIR` writes fixtures (zip and legacy checkpoints with their descriptions),
// `groco DIR` a checkpoint shaped like the published GroCo ones, `describe FILE...` loads files
// with torch.load and prints their descriptions as JSON.
const PEER_SCRIPT = String.raw`
import argparse, collections, hashlib, io, json, math, os, pickle, sys, zipfile
import numpy as np
import torch

def tensor_bytes(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()

def storage_bytes(t):
    s = t.storage()
    full = torch.empty(0, dtype=t.dtype).set_(s, 0, (s.size(),), (1,))
    return tensor_bytes(full)

def sha(b):
    return hashlib.sha256(b).hexdigest()[:24]

class Describer:
    def __init__(self):
        self.index = {}
        self.storages = []

    def __call__(self, v):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, np.generic):
            return self(v.item())
        if isinstance(v, int):
            return v if abs(v) <= 2**53 - 1 else {'int': str(v)}
        if isinstance(v, float):
            if math.isnan(v) or math.isinf(v):
                return {'float': repr(v)}
            return v
        if isinstance(v, (bytes, bytearray)):
            return {'bytes': bytes(v).hex()}
        if isinstance(v, torch.device):
            return str(v)
        if isinstance(v, torch.Tensor):
            key = v.storage()._storage._cdata
            if key not in self.index:
                self.index[key] = len(self.storages)
                self.storages.append(sha(storage_bytes(v)))
            return {'tensor': {
                'dtype': str(v.dtype).replace('torch.', ''),
                'shape': list(v.shape), 'stride': list(v.stride()),
                'offset': v.storage_offset(), 'requires_grad': v.requires_grad,
                'parameter': isinstance(v, torch.nn.Parameter),
                'storage': self.index[key], 'sha': sha(tensor_bytes(v))}}
        if isinstance(v, collections.OrderedDict):
            out = {'odict': [[self(k), self(x)] for k, x in v.items()]}
            if hasattr(v, '_metadata'):
                out['metadata'] = self(v._metadata)
            return out
        if isinstance(v, dict):
            return {'dict': [[self(k), self(x)] for k, x in v.items()]}
        if isinstance(v, list):
            return {'list': [self(x) for x in v]}
        if isinstance(v, tuple):
            return {'tuple': [self(x) for x in v]}
        if isinstance(v, (set, frozenset)):
            return {'set': sorted(json.dumps(self(x), separators=(',', ':')) for x in v)}
        if isinstance(v, argparse.Namespace):
            return {'namespace': [[k, self(x)] for k, x in vars(v).items()]}
        raise TypeError('cannot describe %r' % type(v))

def describe(obj):
    d = Describer()
    value = d(obj)
    return {'value': value, 'storages': d.storages}

def plain_values():
    shared = [1, 2]
    return {
        'none': None, 'true': True, 'false': False, 'int': 7, 'neg': -123456,
        'int32max': 2**31 - 1, 'int32min': -2**31, 'big': 2**70, 'neg_big': -(2**100) + 1,
        'safe': 2**53 - 1, 'unsafe': 2**53, 'float': 0.1, 'neg_zero': -0.0,
        'nan': float('nan'), 'inf': float('inf'), 'tiny': 5e-324,
        'str': 'h\u00e9llo \u2713 \U0001d11e', 'escapes': 'a\\b\nc\rd\x00e\x1a\'"',
        'empty_str': '', 'bytes': b'\x00\xffabc\x80', 'bytearray': bytearray(b'xy'),
        'empty_bytes': b'', 'list': [1, [2, [3, []]], (4, 5)], 'tuple0': (), 'tuple1': (1,),
        'tuple5': (1, 2, 3, 4, 5), 'nested': {'a': {'b': {'c': [None]}}},
        'int_keys': {0: 'zero', 1: 'one', -5: 'neg', '0': 'string zero'},
        'tuple_key': {(1, 'a'): 1}, 'odict': collections.OrderedDict([('z', 1), ('a', 2)]),
        'set': {1, 2, 3}, 'frozenset': frozenset(['x']),
        'long_list': list(range(2500)), 'big_dict': {'k%d' % i: i for i in range(1500)},
        'shared': [shared, shared], 'np_float': np.float64(1.5), 'np_f32': np.float32(0.25),
        'np_int': np.int64(-3), 'np_uint8': np.uint8(200), 'np_bool': np.bool_(True),
    }

def fixtures():
    g = torch.Generator().manual_seed(0)
    out = {}

    dtypes = collections.OrderedDict()
    for name in ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8',
                 'uint8', 'bool']:
        dtype = getattr(torch, name)
        if dtype.is_floating_point:
            t = torch.randn(2, 3, generator=g).to(dtype)
        elif dtype == torch.bool:
            t = torch.randint(0, 2, (2, 3), generator=g).bool()
        else:
            low = 0 if dtype == torch.uint8 else -100
            t = torch.randint(low, 100, (2, 3), generator=g).to(dtype)
        dtypes[name] = t
    dtypes['int64_extremes'] = torch.tensor([-2**63, 2**63 - 1, 0], dtype=torch.int64)
    dtypes['float_specials'] = torch.tensor([float('nan'), float('inf'), -float('inf'), -0.0])
    dtypes['scalar'] = torch.tensor(3.5, dtype=torch.float64)
    dtypes['empty'] = torch.empty(0, 3)
    out['dtypes'] = dtypes

    whole = torch.arange(60, dtype=torch.float32)
    matrix = whole[10:].view(5, 10)
    out['views'] = {
        'whole': whole, 'matrix': matrix, 'transposed': matrix.t(), 'column': matrix[:, 3],
        'strided': matrix[2:, 1::3], 'element': whole[59],
        'broadcast': torch.arange(3, dtype=torch.int16).expand(4, 3),
        'other': torch.ones(2, 2, dtype=torch.float64),
    }

    out['parameters'] = {
        'weight': torch.nn.Parameter(torch.randn(3, 2, generator=g)),
        'frozen': torch.nn.Parameter(torch.randn(2, generator=g), requires_grad=False),
        'leaf': torch.ones(2, requires_grad=True),
    }

    out['python'] = dict(plain_values(), **{
        'size': torch.Size([2, 3]), 'namespace': argparse.Namespace(lr=0.1, arch='resnet50'),
        'device': torch.device('cuda', 0)})

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.ReLU(),
                                torch.nn.Linear(3, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(8, 4, generator=g)).pow(2).sum().backward()
        optimizer.step()
    out['training'] = {'epoch': 3, 'model': model.state_dict(), 'optimizer': optimizer.state_dict()}
    return out

def make(outdir):
    names = []
    for name, obj in fixtures().items():
        torch.save(obj, os.path.join(outdir, name + '.zip.pth'))
        torch.save(obj, os.path.join(outdir, name + '.legacy.pth'),
                   _use_new_zipfile_serialization=False)
        torch.save(obj, os.path.join(outdir, name + '.p4.pth'), pickle_protocol=4)
        with open(os.path.join(outdir, name + '.json'), 'w') as f:
            json.dump(describe(obj), f)
        names.append(name)

    # the same zip checkpoint with deflated records
    with zipfile.ZipFile(os.path.join(outdir, 'python.zip.pth')) as src, \
            zipfile.ZipFile(os.path.join(outdir, 'python.deflated.pth'), 'w',
                            zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    print(json.dumps(names))

def groco(outdir):
    import torchvision
    torch.manual_seed(0)
    encoder = torchvision.models.resnet50(zero_init_residual=True)
    encoder.fc = torch.nn.Identity()
    d = 2048
    projection = torch.nn.Sequential(
        torch.nn.Linear(d, d, bias=False), torch.nn.BatchNorm1d(d), torch.nn.ReLU(),
        torch.nn.Linear(d, d, bias=False), torch.nn.BatchNorm1d(d), torch.nn.ReLU(),
        torch.nn.Linear(d, 2048), torch.nn.BatchNorm1d(2048, affine=False))
    params = list(encoder.parameters()) + list(projection.parameters())
    optimizer = torch.optim.SGD(params, lr=0.3, momentum=0.9, weight_decay=1e-6)
    for p in params:
        p.grad = torch.full_like(p, 1e-3)
    optimizer.step()
    encoder_state = collections.OrderedDict(
        ('module.encoder.' + k, v) for k, v in encoder.state_dict().items())
    encoder_state._metadata = collections.OrderedDict(
        ('module.encoder.' + k if k else 'module.encoder', v)
        for k, v in encoder.state_dict()._metadata.items())
    config = collections.OrderedDict([
        ('name', '2views_100ep'), ('encoder', collections.OrderedDict([
            ('type', 'RegularEncoder'), ('args', collections.OrderedDict([('arch', 'resnet50')]))])),
        ('base_learning_rate', 0.3), ('warmup_epochs', 10), ('seed', 0),
        ('trainer', collections.OrderedDict([('epochs', 100), ('save_period', 10)]))])
    state = {
        'epoch': 99, 'step': 500400, 'encoder': encoder_state,
        'projection': collections.OrderedDict(
            ('module.' + k, v) for k, v in projection.state_dict().items()),
        'optimizer': optimizer.state_dict(), 'config': config,
    }
    path = os.path.join(outdir, 'groco_resnet50.pth')
    torch.save(state, path, _use_new_zipfile_serialization=False)
    with open(os.path.join(outdir, 'groco_resnet50.json'), 'w') as f:
        json.dump(describe(state), f)

def pickles(outdir):
    value = plain_values()
    for protocol in range(6):
        with open(os.path.join(outdir, 'plain.p%d.pkl' % protocol), 'wb') as f:
            pickle.dump(value, f, protocol=protocol)
    with open(os.path.join(outdir, 'plain.json'), 'w') as f:
        json.dump(describe(value), f)

def load_pickles(paths):
    # pickles written by the TypeScript pickler, read by plain pickle
    descriptions = []
    for path in paths:
        with open(path, 'rb') as f:
            descriptions.append(describe(pickle.load(f)))
    print(json.dumps(descriptions))

def torchvision_check(rewritten, exported):
    # the rewritten checkpoint's description, and the exported encoder loaded strictly into a
    # torchvision ResNet-50, compared with the encoder in the checkpoint
    import torchvision
    model = torchvision.models.resnet50()
    model.fc = torch.nn.Identity()
    model.load_state_dict(torch.load(exported), strict=True)
    checkpoint = torch.load(rewritten)
    encoder = checkpoint['encoder']
    equal = all(torch.equal(v, encoder['module.encoder.' + k])
                for k, v in model.state_dict().items())
    print(json.dumps({'description': describe(checkpoint), 'loaded': True, 'equal': equal}))

def describe_files(paths):
    loaded = [torch.load(p) for p in paths]
    types = [{str(k): type(v).__name__ for k, v in obj.items()} if isinstance(obj, dict) else {}
             for obj in loaded]
    print(json.dumps({'descriptions': [describe(obj) for obj in loaded], 'types': types}))

if __name__ == '__main__':
    command, args = sys.argv[1], sys.argv[2:]
    {'make': lambda: make(args[0]), 'groco': lambda: groco(args[0]),
     'describe': lambda: describe_files(args), 'pickles': lambda: pickles(args[0]),
     'load_pickles': lambda: load_pickles(args),
     'torchvision': lambda: torchvision_check(args[0], args[1])}[command]()
`;
