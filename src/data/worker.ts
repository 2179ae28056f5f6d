// Entry point of a loader worker thread: runs the Producer for the epochs the loader asks
// for, sending batches (their buffers transferred, not copied) while it holds credits.

import { parentPort, workerData } from 'node:worker_threads';

import { DataError } from './broken.js';
import { Producer, type EpochPlan, type ProducerConfig, type ProducerMessage } from './producer.js';

export type ToWorker =
  | { type: 'epoch'; epoch: number; plan: EpochPlan; prefetch: number }
  | { type: 'credit'; epoch: number }
  | { type: 'cancel'; epoch: number }
  | { type: 'close' };

export type FromWorker =
  | (ProducerMessage & { epoch: number })
  | {
      type: 'error'; epoch: number; message: string; stack?: string;
      kind?: string; file?: string; detail?: string;
    };

interface EpochState {
  epoch: number;
  credits: number;
  cancelled: boolean;
  wake: (() => void) | null;
}

if (parentPort === null) throw new Error('data/worker.js must run as a worker thread');
const port = parentPort;
const producer = new Producer(workerData as ProducerConfig);
let state: EpochState | null = null;

function post(message: FromWorker): void {
  if (message.type === 'batch' || message.type === 'tail') {
    const transfer = [message.batch.cls.buffer, ...message.batch.views.map((v) => v.buffer)];
    port.postMessage(message, transfer as ArrayBuffer[]);
  } else {
    port.postMessage(message);
  }
}

async function runEpoch(epoch: number, plan: EpochPlan, prefetch: number): Promise<void> {
  const mine: EpochState = { epoch, credits: prefetch, cancelled: false, wake: null };
  state = mine;
  let done = false;
  try {
    for await (const message of producer.run(epoch, plan, () => mine.cancelled)) {
      if (message.type === 'batch') {
        while (mine.credits <= 0 && !mine.cancelled) {
          await new Promise<void>((resolve) => (mine.wake = resolve));
        }
        if (mine.cancelled) break;
        mine.credits--;
      }
      if (message.type === 'done') done = true;
      post({ ...message, epoch });
    }
    if (!done) post({ type: 'done', epoch, samples: 0 });
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    post({
      type: 'error', epoch, message: e.message, stack: e.stack,
      ...(e instanceof DataError ? { kind: e.kind, file: e.file, detail: e.detail } : {}),
    });
  }
}

port.on('message', (message: ToWorker) => {
  if (message.type === 'close') {
    port.close(); // nothing else keeps the thread alive: it exits once in-flight work ends
  } else if (message.type === 'epoch') {
    void runEpoch(message.epoch, message.plan, message.prefetch);
  } else if (state !== null && state.epoch === message.epoch) {
    if (message.type === 'credit') state.credits++;
    else state.cancelled = true;
    state.wake?.();
    state.wake = null;
  }
});
