#!/usr/bin/env node
// The `groco` command: parses the command line and runs one command. Exit codes: 0 success,
// 1 failure, 2 usage error.
import { fileURLToPath } from 'node:url';
import { generalHelp, parseArgs, UsageError } from './args.js';

function fail(error: unknown): number {
  if (error instanceof UsageError) {
    process.stderr.write(`${error.message.startsWith('groco') ? '' : 'groco: '}${error.message}\n`);
    return 2;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`groco: error: ${message}\n`);
  if (process.env.GROCO_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  return 1;
}

function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

async function run(argv: string[]): Promise<number> {
  if (argv.length === 0) {
    process.stderr.write(`${generalHelp()}\n`);
    return 2;
  }
  const parsed = parseArgs(argv);
  switch (parsed.command) {
    case 'help':
      process.stdout.write(parsed.text + '\n');
      return 0;
    case 'version': {
      const { native } = await import('../torch/native.js');
      process.stdout.write(`groco 0.1.0 (libtorch ${native.torchVersion})\n`);
      return 0;
    }
    case 'pretrain': {
      const { runPretrain } = await import('./pretrain_command.js');
      const outcome = await runPretrain(parsed.options);
      return outcome.result.stoppedBy === 'signal' ? 130 : 0;
    }
    case 'eval': {
      const { runEval } = await import('./eval_command.js');
      const results = await runEval(parsed.options);
      if (parsed.options.json) printJson(results);
      else for (const [k, v] of Object.entries(results)) process.stdout.write(`${k}: ${v.toFixed(2)}\n`);
      return 0;
    }
    case 'embed': {
      const { runEmbed } = await import('./embed_command.js');
      await runEmbed(parsed.options);
      return 0;
    }
    case 'demo': {
      const { runDemo } = await import('./demo_command.js');
      const result = await runDemo(parsed.options);
      if (parsed.options.json) printJson(result);
      return 0;
    }
    case 'inspect': {
      const { runInspect } = await import('./checkpoint_commands.js');
      await runInspect(parsed.options.file, parsed.options.json);
      return 0;
    }
    case 'export-torchvision': {
      const { runExportTorchvision } = await import('./checkpoint_commands.js');
      const n = await runExportTorchvision(parsed.options.checkpoint, parsed.options.out);
      process.stderr.write(`wrote ${n} tensors to ${parsed.options.out} (torchvision ResNet keys, no fc)\n`);
      return 0;
    }
    case 'preprocess': {
      const { runPreprocess } = await import('./preprocess_command.js');
      await runPreprocess(parsed.options);
      return 0;
    }
    case 'launch': {
      const { launch } = await import('../distributed/launch.js');
      const o = parsed.options;
      return launch({
        nprocPerNode: o.nprocPerNode, nnodes: o.nnodes, nodeRank: o.nodeRank, masterAddr: o.masterAddr,
        masterPort: o.masterPort, command: o.argv, entry: fileURLToPath(import.meta.url),
      });
    }
  }
}

// Worker threads or sockets left behind by a failure must not keep the process alive: once the
// command is over, give output a moment to drain, then exit.
function finish(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 1500).unref();
}

// A rank started by `groco launch` stops as on SIGTERM (checkpoint, then exit) when the
// launcher is gone.
if (process.channel !== undefined) {
  process.channel.unref();
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}

run(process.argv.slice(2)).then(finish, (error: unknown) => finish(fail(error)));
