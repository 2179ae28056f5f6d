// Differentiable sorting networks (Petersen et al.), usable on their own for ranking and sorting
// supervision: see docs/diffsort.md.
export * from './networks.js';
export * from './relaxations.js';
export * from './sort.js';
