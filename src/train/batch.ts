// Plain batches from the data pipeline become tensors here.
import { tensor, type Tensor } from '../torch/index.js';

export interface PlainView {
  data: Float32Array;
  shape: number[];
}

export interface PlainBatch {
  cls: ArrayLike<number> | BigInt64Array;
  views: PlainView[];
}

export function viewTensors(batch: PlainBatch, channelsLast: boolean, device = 'cpu'): Tensor[] {
  return batch.views.map((v) => {
    const t = tensor(v.data, { shape: v.shape });
    let out = channelsLast ? t.contiguous('channels_last') : t;
    if (device !== 'cpu') out = out.to(device);
    return out;
  });
}

export function labelTensor(batch: PlainBatch): Tensor {
  const cls = batch.cls;
  const values = cls instanceof BigInt64Array ? cls : BigInt64Array.from(Array.from(cls as ArrayLike<number>), (v) => BigInt(v));
  return tensor(values);
}
