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

export interface PageOptions {
  /** The server's MAX_MESSAGE_BYTES, so the page refuses larger messages before sending them. */
  readonly maxMessageBytes?: number;
}

/**
 * The CSP below allows only bare `<script>` and `<style>` blocks (hashed by content): a tag with
 * attributes (`<script src>`, `<style media>`), an inline `on...=` handler or a `style=` attribute
 * would be blocked by the browser. Fail at start-up instead of shipping a page that breaks silently.
 */
function checkInline(html: string): void {
  const markup = html.replace(/<(script|style)>[\s\S]*?<\/\1>/g, '');
  const problem = /<(script|style)\s[^>]*>/i.exec(markup) ?? /<[a-z][^>]*\s(on[a-z]+|style)\s*=[^>]*>/i.exec(markup);
  if (problem !== null) {
    throw new Error(`index.html: ${JSON.stringify(problem[0])} is not allowed by the page's Content-Security-Policy`);
  }
}

export function loadPage(file = join(__dirname, 'public', 'index.html'), options: PageOptions = {}): StaticPage {
  let html = readFileSync(file, 'utf8');
  checkInline(html);
  if (options.maxMessageBytes !== undefined) {
    // A <meta> tag, outside the hashed script, so the CSP hash does not depend on the config.
    html = html.replace(/(<meta name="max-message-bytes" content=")\d+(">)/, `$1${options.maxMessageBytes}$2`);
  }
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
