export * from './process_group.js';
export * from './gather.js';
export * from './data_parallel.js';
export * from './launch.js';
