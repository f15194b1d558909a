/**
 * The browser page, GET /: one static HTML file with its CSS and JS inline. It is read once at start-up
 * and served with a strict Content-Security-Policy that allows exactly its own inline script and style
 * (by SHA-256 hash), and WebSocket/fetch only back to this server.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';

export interface StaticPage {
  readonly body: Buffer;
  readonly headers: Readonly<Record<string, string>>;
}

function hashes(html: string, tag: 'script' | 'style'): string {
  const found: string[] = [];
  const pattern = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g');
  for (const match of html.matchAll(pattern)) {
    found.push(`'sha256-${createHash('sha256').update(match[1]!).digest('base64')}'`);
  }
  return found.length > 0 ? found.join(' ') : "'none'";
}

export function loadPage(file = join(__dirname, 'public', 'index.html')): StaticPage {
  const html = readFileSync(file, 'utf8');
  const csp = [
    "default-src 'none'",
    `script-src ${hashes(html, 'script')}`,
    `style-src ${hashes(html, 'style')}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return {
    body: Buffer.from(html, 'utf8'),
    headers: {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': csp,
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cache-Control': 'no-cache',
    },
  };
}

export function servePage(page: StaticPage, res: ServerResponse, head: boolean): void {
  res.writeHead(200, { ...page.headers, 'Content-Length': String(page.body.length) });
  res.end(head ? undefined : page.body);
}
