// One rank of the loopback collective tests; prints its results as JSON on stdout.
import * as T from '../../src/torch/index.js';
import { nn, tidy } from '../../src/torch/index.js';
import {
  ProcessGroup, distributedEnv, gatherWithGradient, synchronizeBatchNorm, averageGradients,
} from '../../src/distributed/index.js';

const mode = process.argv[2];
const env = distributedEnv();
const group = ProcessGroup.init(env, Number(process.env.GROCO_TEST_TIMEOUT_MS ?? 20000));
const out: Record<string, unknown> = { rank: env.rank };

if (mode === 'die') {
  if (env.rank === 1) process.exit(3);
  try {
    tidy(() => group.allReduce([T.ones([4])]));
    group.barrier();
    out.error = null;
  } catch (error) {
    out.error = (error as Error).message;
  }
} else {
  tidy(() => {
    const t = T.full([3], env.rank + 1);
    group.allReduce([t]);
    out.allReduce = t.toFlatArray();
    out.allGather = group.allGatherCat(T.full([2], env.rank)).toFlatArray();

    // gathered rows with gradient: loss_r = sum(gathered * w_r), w_r = rank + 1
    const x = T.full([2, 1], env.rank + 10, { requiresGrad: true });
    const g = gatherWithGradient(group, x);
    g.mul(env.rank + 1).sum().backward();
    out.gatherGrad = x.grad!.toFlatArray();

    // synchronised batch norm on the local half of a fixed batch
    T.manualSeed(0);
    const full = T.randn([8, 3, 2, 2]);
    const local = full.narrow(0, env.rank * 4, 4);
    const bn = new nn.BatchNorm2d(3);
    synchronizeBatchNorm(group, [bn]);
    const y = bn.forward(local);
    y.mul(y).sum().backward();
    averageGradients(group, bn.parameters());
    out.bnOut = y.toFlatArray();
    out.bnWeightGrad = bn.param('weight').grad!.toFlatArray();
    out.runningVar = bn.buffer('running_var')!.toFlatArray();
    const ref = new nn.BatchNorm2d(3);
    const yr = ref.forward(full);
    yr.mul(yr).sum().div(2).backward();
    out.refOut = yr.narrow(0, env.rank * 4, 4).toFlatArray();
    out.refWeightGrad = ref.param('weight').grad!.toFlatArray();
    out.refRunningVar = ref.buffer('running_var')!.toFlatArray();
  });
}
group.barrier();
process.stdout.write(JSON.stringify(out) + '\n');
