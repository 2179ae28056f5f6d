// One rank (or the single process) of the data-parallel equivalence test: a small conv net with
// batch norm and a projection, trained for a few SGD steps on a fixed batch with a given loss.
import * as T from '../../src/torch/index.js';
import { nn, optim, tidy } from '../../src/torch/index.js';
import { createLoss } from '../../src/losses/index.js';
import {
  ProcessGroup, averageGradients, broadcastModules, distributedEnv, negativesFromAllRanks,
  synchronizeBatchNorm,
} from '../../src/distributed/index.js';

const [lossType, argsJson] = [process.argv[2]!, process.argv[3]!];
const distributed = process.env.WORLD_SIZE !== undefined;
const group = distributed ? ProcessGroup.init(distributedEnv(), 20000) : null;
const rank = group?.rank ?? 0;
const world = group?.worldSize ?? 1;

T.manualSeed(1);
const model = new nn.Sequential(
  new nn.Conv2d(1, 4, 3, { padding: 1 }), new nn.BatchNorm2d(4), new nn.ReLU(),
  new nn.AdaptiveAvgPool2d(1), new nn.Flatten(), new nn.Linear(4, 16, { bias: false }), new nn.BatchNorm1d(16),
  new nn.ReLU(), new nn.Linear(16, 12)).to('float64');
const batch = 16;
const views = [T.randn([batch, 1, 6, 6], { dtype: 'float64' }), T.randn([batch, 1, 6, 6], { dtype: 'float64' })];
const local = views.map((v) => v.narrow(0, rank * (batch / world), batch / world));
if (group !== null) {
  broadcastModules(group, [model]);
  synchronizeBatchNorm(group, [model]);
}
const loss = createLoss(lossType, JSON.parse(argsJson) as Record<string, unknown>,
  { gatherNegatives: group ? negativesFromAllRanks(group) : undefined });
const opt = new optim.SGD(model.parameters(), { lr: 0.5, momentum: 0.9 });
const losses: number[] = [];
for (let step = 0; step < 3; step++) {
  tidy(() => {
    opt.zeroGrad();
    const { loss: l } = loss.forward(local.map((v) => model.forward(v)));
    l.backward();
    if (group !== null) averageGradients(group, model.parameters());
    opt.step();
    const mean = l.detach().reshape([1]).clone();
    if (group !== null) {
      group.allReduce([mean]);
      mean.div_(world);
    }
    losses.push(mean.item());
  });
}
const state: Record<string, number[]> = {};
for (const [k, v] of model.stateDict()) state[k] = v.toFlatArray();
process.stdout.write(JSON.stringify({ rank, losses, state }) + '\n');
group?.barrier();
