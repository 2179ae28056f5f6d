// Runs every case of every file of a reference fixture folder (values produced by the PyTorch
// reference) and fails on any deviation beyond tolerance, any unparsable or unrecognised case.
// Folder: test/fixtures/reference, or the one named by GROCO_REFERENCE_FIXTURES. Ends with
// `reference fixtures: N cases, M failed, S skipped`.
//
// Tolerances, |ours - reference| <= bound:
// - sorting networks, k-NN counts: exact (0/1 matrices, integers).
// - diffsort (float64): 1e-9 x max(1, max |reference|) per tensor; the gradient for `gaussian`
//   1e-6 x (1 + |reference|) per entry, because the reference's Gaussian CDF backward rounds
//   sigma = 1 / steepness to float32 (measured: the deviation vanishes when it does not).
// - losses (float32): loss and logged statistics 1e-5 x max(1, |reference|); gradients 1e-5 x
//   max |reference| of the tensor. Float32 rounding (6e-8) through different but equivalent
//   arithmetic (gathered pairs instead of dense products, normalised-row products) stays far
//   below: the largest deviation measured is 4e-7 of the scale. Float64 fixtures get 1e-9.
// - LARC steps (float32): 1e-6 x max(1, |reference|), a few float32 ulps of the parameters.
// - cosine schedule (float64 arithmetic): 1e-12 x max(1, |reference|).
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DiffSorter, layerMatrices, sortingNetwork, checkDistribution, checkNetworkType }
  from '../src/diffsort/index.js';
import { createLoss } from '../src/losses/index.js';
import { Tensor, optim, tensor, tidy, type DType } from '../src/torch/index.js';

const folder = process.env.GROCO_REFERENCE_FIXTURES ||
  fileURLToPath(new URL('../../test/fixtures/reference', import.meta.url));

const tally = { cases: 0, failed: 0, skipped: 0 };

// ---- parsing ------------------------------------------------------------------------------

interface TensorJson { shape: number[]; data: number[] }

class FixtureError extends Error {}

function field<T = unknown>(record: unknown, key: string, where: string): T {
  if (record === null || typeof record !== 'object' || !(key in record)) {
    throw new FixtureError(`${where}: missing key '${key}'`);
  }
  return (record as Record<string, T>)[key]!;
}

function numberField(record: unknown, key: string, where: string): number {
  const value = field(record, key, where);
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new FixtureError(`${where}: '${key}' expected a number, got ${JSON.stringify(value)}`);
  }
  return value;
}

function tensorJson(value: unknown, where: string): TensorJson {
  const shape = field<number[]>(value, 'shape', where);
  const data = field<number[]>(value, 'data', where);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0) ||
    !Array.isArray(data) || data.length !== shape.reduce((a, b) => a * b, 1) ||
    !data.every((v) => typeof v === 'number')) {
    throw new FixtureError(`${where}: expected {shape, data} with prod(shape) numbers`);
  }
  return { shape, data };
}

function toTensor(value: unknown, where: string, dtype: DType): Tensor {
  const { shape, data } = tensorJson(value, where);
  return tensor(Float64Array.from(data), { shape, dtype });
}

function checkKeys(record: unknown, allowed: readonly string[], where: string): void {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    throw new FixtureError(`${where}: expected an object`);
  }
  const unknown = Object.keys(record).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw new FixtureError(`${where}: unrecognised keys ${unknown.join(', ')}`);
  }
}

function fileDtype(doc: Record<string, unknown>, file: string): DType {
  const word = String(doc.dtype ?? '').split(/\s/)[0];
  if (word !== 'float32' && word !== 'float64') {
    throw new FixtureError(`${file}: 'dtype' expected float32 or float64, ` +
      `got ${JSON.stringify(doc.dtype)}`);
  }
  return word;
}

// ---- comparison ---------------------------------------------------------------------------

type Bound = (reference: number, scale: number) => number;

/** 1e-x of max(1, max |reference|): for values near unit scale. */
const ofUnitScale = (rtol: number): Bound => (_r, scale) => rtol * Math.max(1, scale);
/** rtol of the tensor's largest entry: for gradients, whose scale is the tensor's. */
const ofTensorScale = (rtol: number): Bound => (_r, scale) => rtol * scale;
const exact: Bound = () => 0;

function compare(what: string, ours: ArrayLike<number>, reference: TensorJson | number[],
  bound: Bound): void {
  const ref = Array.isArray(reference) ? reference : reference.data;
  assert.equal(ours.length, ref.length, `${what}: ${ours.length} values, reference ${ref.length}`);
  const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < ref.length; i++) {
    const excess = Math.abs(ours[i]! - ref[i]!) - bound(ref[i]!, scale);
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    assert.fail(`${what}: entry ${worst} is ${ours[worst]}, reference ${ref[worst]} ` +
      `(|diff| ${Math.abs(ours[worst]! - ref[worst]!).toExponential(3)}, bound ` +
      `${bound(ref[worst]!, scale).toExponential(3)})`);
  }
}

function values(t: Tensor): number[] {
  return t.toFlatArray();
}

// ---- the six files ------------------------------------------------------------------------

interface Case {
  name: string;
  /** A reason to skip, or the check. */
  skip?: string;
  run?: () => void | Promise<void>;
}

type Reader = (doc: Record<string, unknown>, file: string) => Promise<Case[]> | Case[];

function sortingNetworkCases(doc: Record<string, unknown>, file: string): Case[] {
  return cases(doc, file).map((c, i) => {
    const where = `${file} case ${i}`;
    return {
      name: `${i}: ${String((c as Record<string, unknown>).type)} ` +
        `n=${String((c as Record<string, unknown>).n)}`,
      run: () => {
        checkKeys(c, ['type', 'n', 'layers'], where);
        const type = parsed(() => checkNetworkType(field(c, 'type', where), 'type'));
        const n = numberField(c, 'n', where);
        const layers = field<unknown[]>(c, 'layers', where);
        if (!Array.isArray(layers)) throw new FixtureError(`${where}: 'layers' expected a list`);
        const ours = layerMatrices(sortingNetwork(type, n));
        assert.equal(ours.length, layers.length,
          `${where}: ${ours.length} layers, reference ${layers.length}`);
        layers.forEach((layer, l) => {
          const reference = actingComparators(layer, n, `${where} layer ${l}`);
          const mine = ours[l]!;
          const flat = (m: number[][]) => m.flat();
          compare(`${where} layer ${l} split_a`, flat(mine.splitA), reference.splitA, exact);
          compare(`${where} layer ${l} split_b`, flat(mine.splitB), reference.splitB, exact);
          compare(`${where} layer ${l} combine_min`, flat(mine.combineMin), reference.combineMin,
            exact);
          compare(`${where} layer ${l} combine_max`, flat(mine.combineMax), reference.combineMax,
            exact);
        });
      },
    };
  });
}

/**
 * The reference's layer matrices without its identity comparators (a wire compared with itself,
 * written back with weight 0.5 twice): checks that those are well formed and drops them.
 */
function actingComparators(layer: unknown, n: number, where: string) {
  if (!Array.isArray(layer) || layer.length !== 4) {
    throw new FixtureError(`${where}: expected [split_a, split_b, combine_min, combine_max]`);
  }
  const [sa, sb, cmin, cmax] = layer.map((m, j) => tensorJson(m, `${where} matrix ${j}`));
  const k = sa!.shape[0]!;
  for (const [m, rows, cols] of [[sa, k, n], [sb, k, n], [cmin, n, k], [cmax, n, k]] as const) {
    if (m!.shape.length !== 2 || m!.shape[0] !== rows || m!.shape[1] !== cols) {
      throw new FixtureError(`${where}: matrix of shape [${m!.shape.join(', ')}], ` +
        `expected [${rows}, ${cols}]`);
    }
  }
  const at = (m: TensorJson, r: number, c: number) => m.data[r * m.shape[1]! + c]!;
  const keep: number[] = [];
  for (let c = 0; c < k; c++) {
    const wireA = [...Array(n).keys()].filter((w) => at(sa!, c, w) !== 0);
    const wireB = [...Array(n).keys()].filter((w) => at(sb!, c, w) !== 0);
    const identity = wireA.length === 1 && wireB.length === 1 && wireA[0] === wireB[0];
    if (!identity) {
      keep.push(c);
      continue;
    }
    const w = wireA[0]!;
    for (let r = 0; r < n; r++) {
      const expected = r === w ? 0.5 : 0;
      if (at(cmin!, r, c) !== expected || at(cmax!, r, c) !== expected) {
        assert.fail(`${where}: comparator ${c} reads wire ${w} twice but is not an identity ` +
          `(combine weights other than 0.5 on wire ${w})`);
      }
    }
  }
  return {
    splitA: keep.flatMap((c) => sa!.data.slice(c * n, (c + 1) * n)),
    splitB: keep.flatMap((c) => sb!.data.slice(c * n, (c + 1) * n)),
    combineMin: [...Array(n).keys()].flatMap((r) => keep.map((c) => at(cmin!, r, c))),
    combineMax: [...Array(n).keys()].flatMap((r) => keep.map((c) => at(cmax!, r, c))),
  };
}

function diffsortCases(doc: Record<string, unknown>, file: string): Case[] {
  const dtype = fileDtype(doc, file);
  const rtol = dtype === 'float64' ? 1e-9 : 1e-5;
  return cases(doc, file).map((c, i) => {
    const where = `${file} case ${i}`;
    const r = c as Record<string, unknown>;
    return {
      name: `${i}: ${String(r.network)} n=${String(r.n)} ${String(r.distribution)} ` +
        `steepness=${String(r.steepness)}`,
      run: () => tidy(() => {
        checkKeys(c, ['network', 'n', 'distribution', 'steepness', 'art_lambda', 'x', 'sorted',
          'permutation', 'grad_sorted', 'grad_permutation', 'grad_x'], where);
        const distribution = parsed(() => checkDistribution(field(c, 'distribution', where)));
        const sorter = new DiffSorter(numberField(c, 'n', where), {
          network: parsed(() => checkNetworkType(field(c, 'network', where))),
          distribution,
          steepness: numberField(c, 'steepness', where),
          artLambda: numberField(c, 'art_lambda', where),
        });
        try {
          const x = toTensor(r.x, `${where} x`, dtype).requiresGrad_();
          const { sorted, permutation } = sorter.sort(x);
          const objective = sorted.mul(toTensor(r.grad_sorted, `${where} grad_sorted`, dtype)).sum()
            .add(permutation.mul(toTensor(r.grad_permutation,
              `${where} grad_permutation`, dtype)).sum());
          objective.backward();
          compare(`${where} sorted`, values(sorted), tensorJson(r.sorted, where),
            ofUnitScale(rtol));
          compare(`${where} permutation`, values(permutation), tensorJson(r.permutation, where),
            ofUnitScale(rtol));
          const gradBound: Bound = distribution === 'gaussian' && dtype === 'float64'
            ? (ref) => 1e-6 * (1 + Math.abs(ref))
            : ofUnitScale(rtol);
          compare(`${where} grad_x`, values(x.grad!), tensorJson(r.grad_x, where), gradBound);
        } finally {
          sorter.dispose();
        }
      }),
    };
  });
}

/** Views named projection_image_aug1 .. N, in order. */
function views(inputs: unknown, where: string, dtype: DType):
  { names: string[]; tensors: Tensor[] } {
  if (inputs === null || typeof inputs !== 'object') {
    throw new FixtureError(`${where}: 'inputs' expected an object`);
  }
  const names = Object.keys(inputs);
  names.forEach((name, i) => {
    if (name !== `projection_image_aug${i + 1}`) {
      throw new FixtureError(`${where}: input ${i + 1} is '${name}', ` +
        `expected 'projection_image_aug${i + 1}'`);
    }
  });
  const tensors = names.map((name) =>
    toTensor((inputs as Record<string, unknown>)[name], `${where} ${name}`, dtype).requiresGrad_());
  return { names, tensors };
}

const LOSS_CONFIG_KEYS: Record<string, readonly string[]> = {
  groco: ['n_augs', 'n_pos_augs', 'topk_neg', 'steepness', 'stop_grad'],
  nt_xent: ['type', 'temperature', 'stop_grad', 'topk_neg', 'n_augs', 'n_pos_augs'],
};

function lossCases(kind: 'groco' | 'nt_xent') {
  return (doc: Record<string, unknown>, file: string): Case[] => {
    const dtype = fileDtype(doc, file);
    const rtol = dtype === 'float64' ? 1e-9 : 1e-5;
    return cases(doc, file).map((c, i) => {
      const where = `${file} case ${i}`;
      const r = c as Record<string, unknown>;
      return {
        name: `${i}: ${JSON.stringify(r.config)}${'error' in r ? ' (refused)' : ''}`,
        run: () => tidy(() => {
          checkKeys(c, ['config', 'inputs', 'loss', 'loss_info', 'grads', 'error'], where);
          const config = { ...field<Record<string, unknown>>(c, 'config', where) };
          checkKeys(config, LOSS_CONFIG_KEYS[kind]!, `${where} config`);
          const type = kind === 'groco' ? 'GroCo' : String(config.type ?? 'NT_Xent');
          delete config.type;
          const { names, tensors } = views(field(c, 'inputs', where), where, dtype);

          if ('error' in r) {
            // the reference fails on this config: it must be refused, naming the option
            const error = captureError(() => {
              const loss = createLoss(type, config);
              try { loss.forward(tensors); } finally { loss.dispose(); }
            });
            assert.ok(error,
              `${where}: the reference fails (${String(r.error)}); expected an error`);
            const named = Object.keys(config).some((key) => error.message.includes(`'${key}'`));
            assert.ok(named, `${where}: error '${error.message}' names none of the options ` +
              `${Object.keys(config).join(', ')}`);
            return;
          }

          const loss = createLoss(type, config);
          try {
            const out = loss.forward(tensors);
            out.loss.backward();
            compare(`${where} loss`, [out.loss.item()], [numberField(c,
              'loss', where)], ofUnitScale(rtol));
            if ('loss_info' in r) {
              const info = field<Record<string, number>>(c, 'loss_info', where);
              assert.deepEqual(Object.keys(out.info).sort(), Object.keys(info).sort(),
                `${where}: logged statistics`);
              for (const key of Object.keys(info)) {
                compare(`${where} loss_info.${key}`, [out.info[key]!], [info[key]!],
                  ofUnitScale(rtol));
              }
            }
            const grads = field<Record<string, unknown>>(c, 'grads', where);
            checkKeys(grads, names, `${where} grads`);
            names.forEach((name, v) => {
              const grad = tensors[v]!.grad;
              const reference = tensorJson(grads[name], `${where} grads.${name}`);
              if (grad === null) {
                assert.ok(reference.data.every((x) => x === 0),
                  `${where}: no gradient reached ${name}`);
              } else {
                compare(`${where} grads.${name}`, values(grad), reference, ofTensorScale(rtol));
              }
            });
          } finally {
            loss.dispose();
          }
        }),
      };
    });
  };
}

/** What the k-NN evaluator exports (src/eval/knn.ts): predicted classes per k. */
type KnnPredict = (bank: Tensor, bankLabels: Tensor, queries: Tensor,
  options: { k: number[]; temperature: number; numClasses: number }) =>
  Map<number, ArrayLike<number>>;

async function knnCases(doc: Record<string, unknown>, file: string): Promise<Case[]> {
  const module = await optionalModule('../src/eval/knn.js');
  return cases(doc, file).map((c, i) => {
    const where = `${file} case ${i}`;
    const name = `${i}: k=${JSON.stringify((c as Record<string, unknown>).k)}`;
    if (module === null) return { name, skip: 'src/eval/knn.ts is not there yet' };
    return {
      name,
      run: () => tidy(() => {
        const knnPredict = module.knnPredict as KnnPredict | undefined;
        assert.equal(typeof knnPredict, 'function', 'src/eval/knn.ts: expected an export ' +
          'knnPredict(bank, bankLabels, queries, {k, temperature, numClasses}) -> ' +
          'Map(k -> labels)');
        checkKeys(c, ['num_classes', 'k', 'temperature', 'bank', 'bank_labels', 'queries',
          'query_labels', 'n_correct_per_k'], where);
        const r = c as Record<string, unknown>;
        const ks = field<number[]>(c, 'k', where);
        const expected = field<number[]>(c, 'n_correct_per_k', where);
        const labelsOf = (key: string) => {
          const list = field<number[]>(c, key, where);
          if (!Array.isArray(list) || !list.every(Number.isInteger)) {
            throw new FixtureError(`${where}: '${key}' expected a list of integers`);
          }
          return list;
        };
        const queryLabels = labelsOf('query_labels');
        const bankLabels = tensor(labelsOf('bank_labels'), { dtype: 'int64' });
        const bank = toTensor(r.bank, `${where} bank`, 'float32');
        const queries = toTensor(r.queries, `${where} queries`, 'float32');
        if (!Array.isArray(ks) || !ks.every(Number.isInteger)) {
          throw new FixtureError(`${where}: 'k' expected a list of integers`);
        }
        const predictions = knnPredict!(bank, bankLabels, queries, {
          k: ks, temperature: numberField(c, 'temperature', where),
          numClasses: numberField(c, 'num_classes', where),
        });
        const correct = ks.map((k) => {
          const predicted = predictions.get(k);
          assert.ok(predicted !== undefined,
            `${where}: knnPredict returned no predictions for k=${k}`);
          return Array.from(predicted).filter((p, q) => p === queryLabels[q]).length;
        });
        compare(`${where} n_correct_per_k`, correct, expected, exact);
      }),
    };
  });
}

async function scheduleLarcCases(doc: Record<string, unknown>, file: string): Promise<Case[]> {
  checkKeys(doc, ['kind', 'cosine_with_warmup', 'larc'], file);
  const schedule = await optionalModule('../src/train/schedule.js');
  const cosine = field<Record<string, unknown>>(doc, 'cosine_with_warmup', file);
  const larc = field<Record<string, unknown>>(doc, 'larc', file);
  return [
    schedule === null
      ? { name: 'cosine_with_warmup', skip: 'src/train/schedule.ts is not there yet' }
      : {
        name: 'cosine_with_warmup',
        run: () => {
          const where = `${file} cosine_with_warmup`;
          checkKeys(cosine, ['init_lr', 'epochs', 'warmup_epochs', 'lr_by_step'], where);
          type Schedule = { lrAt(step: number): number };
          type Options = { initLr: number; total: number; warmup: number };
          const Cosine = schedule.CosineWithWarmup as (new (o: Options) => Schedule) | undefined;
          assert.equal(typeof Cosine, 'function',
            'src/train/schedule.ts: expected an export CosineWithWarmup');
          const s = new Cosine!({
            initLr: numberField(cosine, 'init_lr', where),
            total: numberField(cosine, 'epochs', where),
            warmup: numberField(cosine, 'warmup_epochs', where),
          });
          const pairs = field<[number, number][]>(cosine, 'lr_by_step', where);
          if (!Array.isArray(pairs) || !pairs.every((p) => Array.isArray(p) && p.length === 2)) {
            throw new FixtureError(`${where}: 'lr_by_step' expected [step, lr] pairs`);
          }
          compare(`${where} lr`, pairs.map(([step]) => s.lrAt(step)), pairs.map(([, lr]) => lr),
            ofUnitScale(1e-12));
        },
      },
    {
      name: 'larc',
      run: () => tidy(() => {
        const where = `${file} larc`;
        checkKeys(larc, ['sgd', 'trust_coefficient', 'clip', 'param0', 'grad0', 'param1', 'grad1',
          'param2'], where);
        const sgd = field<Record<string, unknown>>(larc, 'sgd', where);
        checkKeys(sgd, ['lr', 'momentum', 'weight_decay'], `${where} sgd`);
        const clip = field(larc, 'clip', where);
        if (typeof clip !== 'boolean') {
          throw new FixtureError(`${where}: 'clip' expected a boolean`);
        }
        const param = toTensor(larc.param0, `${where} param0`, 'float32').requiresGrad_();
        const optimizer = new optim.LARC(new optim.SGD([param], {
          lr: numberField(sgd, 'lr', where), momentum: numberField(sgd, 'momentum', where),
          weightDecay: numberField(sgd, 'weight_decay', where),
        }), { trustCoefficient: numberField(larc, 'trust_coefficient', where), clip });
        try {
          for (const step of [0, 1]) {
            param.grad = toTensor(larc[`grad${step}`], `${where} grad${step}`, 'float32');
            optimizer.step();
            compare(`${where} param${step + 1}`, values(param),
              tensorJson(larc[`param${step + 1}`], where), ofUnitScale(1e-6));
          }
        } finally {
          optimizer.dispose();
        }
      }),
    },
  ];
}

const readers: Record<string, { kind: string; read: Reader }> = {
  'sorting_networks.json': { kind: 'sorting_network_matrices', read: sortingNetworkCases },
  'diffsort.json': { kind: 'diffsort', read: diffsortCases },
  'groco.json': { kind: 'groco', read: lossCases('groco') },
  'nt_xent.json': { kind: 'nt_xent', read: lossCases('nt_xent') },
  'knn.json': { kind: 'knn', read: knnCases },
  'schedule_larc.json': { kind: 'schedule_and_larc', read: scheduleLarcCases },
};

// ---- helpers ------------------------------------------------------------------------------

function cases(doc: Record<string, unknown>, file: string): unknown[] {
  const list = doc.cases;
  if (!Array.isArray(list) || list.length === 0) {
    throw new FixtureError(`${file}: 'cases' expected a non-empty list`);
  }
  return list;
}

/** Turns an argument error of ours on a fixture value into an unrecognised-case error. */
function parsed<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw new FixtureError(`unrecognised case: ${(error as Error).message}`);
  }
}

function captureError(fn: () => void): Error | null {
  try {
    fn();
    return null;
  } catch (error) {
    return error as Error;
  }
}

async function optionalModule(path: string): Promise<Record<string, unknown> | null> {
  const url = new URL(path, import.meta.url);
  if (!existsSync(fileURLToPath(url))) return null;
  return await import(url.href) as Record<string, unknown>;
}

async function runCase(t: TestContext, c: Case): Promise<void> {
  tally.cases++;
  if (c.skip !== undefined) {
    tally.skipped++;
    await t.test(c.name, { skip: c.skip }, () => {});
    return;
  }
  await t.test(c.name, async () => {
    try {
      await c.run!();
    } catch (error) {
      tally.failed++;
      throw error;
    }
  });
}

/** A file that cannot be read or parsed counts as one failed case. */
async function failFile(t: TestContext, name: string, error: unknown): Promise<void> {
  await runCase(t, { name, run: () => { throw error; } });
}

// ---- the run ------------------------------------------------------------------------------

const present = existsSync(folder) ? readdirSync(folder).filter((f) => f.endsWith('.json')) : [];
const files = [...new Set([...Object.keys(readers), ...present])].sort();

for (const file of files) {
  test(`reference fixtures: ${file}`, async (t) => {
    const reader = readers[file];
    if (reader === undefined) {
      await failFile(t, `${file}: unrecognised fixture file`,
        new FixtureError(`${file}: not one of ${Object.keys(readers).join(', ')}`));
      return;
    }
    const path = join(folder, file);
    let doc: Record<string, unknown>;
    let list: Case[];
    try {
      if (!existsSync(path)) throw new FixtureError(`${path} is missing`);
      doc = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
      if (doc === null || typeof doc !== 'object' || doc.kind !== reader.kind) {
        throw new FixtureError(`${file}: 'kind' expected '${reader.kind}', got ` +
          `${JSON.stringify((doc as Record<string, unknown> | null)?.kind)}`);
      }
      list = await reader.read(doc, file);
    } catch (error) {
      await failFile(t, `${file}: unreadable`, error);
      return;
    }
    for (const c of list) await runCase(t, c);
  });
}

after(() => {
  console.log(`reference fixtures: ${tally.cases} cases, ${tally.failed} failed, ` +
    `${tally.skipped} skipped`);
});
