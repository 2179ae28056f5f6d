// Reading and writing PyTorch checkpoints as plain data, independent of any tensor library.

export * from './checkpoint.js';
export * from './errors.js';
export * from './pickle_literals.js';
export * from './pickle_reader.js';
export * from './pickle_writer.js';
export * from './python_globals.js';
export * from './summary.js';
export * from './tensor_record.js';
export * from './torch_pickle.js';
export * from './tree_check.js';
export * from './values.js';
export * from './zip.js';
