/**
 * The Origin policy for WebSocket upgrades (RFC 6455 §10.2). The lesson's CheckOrigin returns true and
 * warns against it: any web page could then open a chat socket with its visitor's browser. Allowed:
 * requests without Origin (CLI tools, which no browser page can impersonate), same-origin pages, and
 * the origins listed in ALLOWED_ORIGINS ('*' allows every origin).
 */
import type { IncomingMessage } from 'node:http';

export type OriginCheck = (origin: string | undefined, req: IncomingMessage) => boolean;

export function originPolicy(allowed: readonly string[] | '*'): OriginCheck {
  if (allowed === '*') return () => true;
  const list = new Set(allowed);
  return (origin, req) => {
    if (origin === undefined) return true;
    if (list.has(origin)) return true;
    return isSameOrigin(origin, req.headers.host);
  };
}

/** A page served by us at http://<Host> has exactly the origin http://<Host>. */
function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // "null" (sandboxed frames, file://) and garbage are never same-origin
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  try {
    // Parse Host the same way, so default ports and letter case compare equal.
    return new URL(`${url.protocol}//${host}`).host === url.host;
  } catch {
    return false;
  }
}
