#!/usr/bin/env node
/**
 * Entry point (the lesson's cmd/main.go): read the config, start the server, stop cleanly on signals.
 *
 *   node dist/server.js          PORT=9000 node dist/server.js          (see README: Configuration)
 */
import cluster from 'node:cluster';
import { superviseWorkers } from './cluster/supervisor';
import { ConfigError, loadConfig, type Config } from './config';
import { createApp, type App } from './http/app';
import { consoleLogger, eventLog, stdoutLogger } from './log';

/** SIGINT/SIGTERM: clients get 1001 and the process exits 0 within this budget. */
const SHUTDOWN_BUDGET_MS = 2_000;

function invalid(error: unknown): never {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`wschat: invalid configuration: ${error.message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let config: Config;
  let app: App;
  try {
    config = loadConfig();
  } catch (error) {
    invalid(error);
  }
  // Text lines get their time from the console; a JSON line carries its own.
  const out = config.logFormat === 'json' ? stdoutLogger : consoleLogger;
  // WORKERS=N: this process supervises N workers, each a cluster node (they run the rest of main()).
  if (config.workers > 0 && cluster.isPrimary) return superviseWorkers(config, eventLog(config.logFormat, out));
  try {
    app = createApp(config, out);
  } catch (error) {
    invalid(error);
  }
  const log = app.log;
  try {
    const address = await app.listen();
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const tls = config.tlsCertFile !== '';
    const url = `${tls ? 'https' : 'http'}://${host}:${address.port}`;
    log('listening', { url, chat: `${tls ? 'wss' : 'ws'}://${host}:${address.port}/ws` });
    const m = app.metricsAddress;
    if (m !== undefined) {
      const where = m.family === 'IPv6' ? `[${m.address}]:${m.port}` : `${m.address}:${m.port}`;
      log('metrics', { url: `http://${where}/metrics` });
    }
  } catch (error) {
    const where = `${config.host || '*'}:${config.port}`;
    process.stderr.write(`wschat: cannot listen on ${where}: ${(error as Error).message}\n`);
    process.exit(1);
  }

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log('shutdown', { signal });
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
  // SIGHUP reloads the certificate (new connections get it, open ones stay). Without TLS it keeps its
  // default meaning (the process ends), as before.
  if (config.tlsCertFile !== '') process.on('SIGHUP', () => app.reloadCertificate());
}

void main();
