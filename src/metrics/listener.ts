/**
 * The metrics listener: a small HTTP server of its own (METRICS_HOST:METRICS_PORT), never the chat's
 * port, so a proxy in front of the chat never exposes it. GET and HEAD /metrics answer the exposition;
 * another method there is 405, any other path 404.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CONTENT_TYPE, render, type Family } from './exposition';

export interface MetricsListener {
  readonly server: Server;
  /** Resolves with the bound address. */
  listen(port: number, host: string): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** `collect` is called once per scrape. */
export function createMetricsListener(collect: () => Promise<readonly Family[]>): MetricsListener {
  const server = createServer({ keepAliveTimeout: 5_000, requestTimeout: 10_000 }, (req, res) => {
    const path = (req.url ?? '').split('?', 1)[0];
    const answer = (status: number, body: string, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (path !== '/metrics') return answer(404, 'not found: the metrics are at /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(405, 'use GET\n', { Allow: 'GET, HEAD' });
    collect().then(
      (families) => answer(200, render(families), { 'Content-Type': CONTENT_TYPE }),
      (error: unknown) => answer(500, `cannot collect the metrics: ${String(error)}\n`),
    );
  });
  return {
    server,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
