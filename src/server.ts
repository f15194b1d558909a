#!/usr/bin/env node
/**
 * Entry point (the lesson's cmd/main.go): read the config, start the server, stop cleanly on signals.
 *
 *   node dist/server.js          PORT=9000 node dist/server.js          (see README: Configuration)
 */
import cluster from 'node:cluster';
import { superviseWorkers } from './cluster/supervisor';
import { ConfigError, loadConfig, type Config } from './config';
import { createApp } from './http/app';
import { consoleLogger } from './log';

/** SIGINT/SIGTERM: clients get 1001 and the process exits 0 within this budget. */
const SHUTDOWN_BUDGET_MS = 2_000;

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`wschat: invalid configuration: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }

  // WORKERS=N: this process supervises N workers, each a cluster node (they run the rest of main()).
  if (config.workers > 0 && cluster.isPrimary) return superviseWorkers(config, consoleLogger);

  const app = createApp(config, consoleLogger);
  try {
    const address = await app.listen();
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    consoleLogger(`listening on http://${host}:${address.port} (chat: ws://${host}:${address.port}/ws)`);
  } catch (error) {
    const where = `${config.host || '*'}:${config.port}`;
    process.stderr.write(`wschat: cannot listen on ${where}: ${(error as Error).message}\n`);
    process.exit(1);
  }

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    consoleLogger(`${signal}: shutting down`);
    // Whatever happens, be gone within the budget; say so when it took that (a clean stop never does).
    setTimeout(() => {
      process.stderr.write(`wschat: shutdown did not finish within ${SHUTDOWN_BUDGET_MS} ms: exiting anyway\n`);
      process.exit(0);
    }, SHUTDOWN_BUDGET_MS).unref();
    app.shutdown(SHUTDOWN_BUDGET_MS - 500).then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

void main();
