/**
 * Starts a headless Chromium for the browser test and stops it again. No npm package: the binary is
 * Debian's `chromium` (or CHROMIUM_PATH), driven over the DevTools protocol (see cdp.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { CdpClient } from './cdp';

const CANDIDATES = ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome'];

/** The Chromium executable: $CHROMIUM_PATH, else the first candidate on $PATH; undefined if none. */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.CHROMIUM_PATH) return env.CHROMIUM_PATH;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    for (const name of CANDIDATES) {
      const file = join(dir, name);
      try {
        accessSync(file, constants.X_OK);
        return file;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

export interface Chromium {
  /** ws://127.0.0.1:<port>/devtools/browser/<id> */
  readonly wsUrl: string;
  readonly process: ChildProcess;
  /** Kills the browser (its whole process group) and removes its profile directory. */
  close(): Promise<void>;
}

/** `extraArgs`: more command-line flags, e.g. `--ignore-certificate-errors-spki-list=...` for a test certificate. */
export async function launchChromium(
  binary: string,
  timeoutMs = 15_000,
  extraArgs: readonly string[] = [],
): Promise<Chromium> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'wschat-chromium-'));
  const child = spawn(
    binary,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      '--disable-dev-shm-usage', // containers often have a tiny /dev/shm; Chromium then crashes tabs
      '--remote-debugging-port=0',
      `--user-data-dir=${userDataDir}`,
      ...extraArgs,
      'about:blank',
    ],
    // Its own process group, so close() reaches the renderer and zygote processes too.
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        signal(child, 'SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), 3_000)));
        if (await Promise.race([exited.then(() => false), late])) signal(child, 'SIGKILL');
        clearTimeout(timer);
        await exited;
      }
      signal(child, 'SIGKILL'); // any straggler left in the group
      rmSync(userDataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    })());

  // Chromium prints "DevTools listening on ws://..." on stderr once the port is bound. Keep reading
  // stderr afterwards too: a full pipe would block the browser.
  let tail = '';
  try {
    const wsUrl = await new Promise<string>((resolve, reject) => {
      const late = (): void => reject(new Error(`Chromium did not start within ${timeoutMs} ms:\n${tail}`));
      const timer = setTimeout(late, timeoutMs);
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (chunk: string) => {
        tail = (tail + chunk).slice(-4_000);
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(tail);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`Chromium exited (code ${code}, signal ${sig}) before listening:\n${tail}`));
      });
    });
    return { wsUrl, process: child, close };
  } catch (error) {
    await close();
    throw error;
  }
}

function signal(child: ChildProcess, name: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, name); // the group we created with detached: true
  } catch {
    // already gone
  }
}

/** A block's browser: valid inside its tests (launched in beforeAll, closed in afterAll). */
export interface Browser {
  readonly cdp: CdpClient;
}

/**
 * A describe block that drives Chromium: it gets one browser for all its tests. Without a Chromium
 * binary the block is skipped locally, with a warning, and fails in CI (where .ci/run installs it).
 */
export function describeWithChromium(title: string, body: (browser: Browser) => void): void {
  const binary = findChromium();
  if (binary === undefined) {
    if (process.env.CI) {
      describe(title, () => {
        it('has a Chromium to drive', () => {
          throw new Error('CI needs Chromium for the browser tests: apt-get install chromium (or set CHROMIUM_PATH)');
        });
      });
    } else {
      console.warn(`${title}: SKIPPED, no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)`);
    }
    return;
  }
  let chromium: Chromium | undefined;
  let cdp: CdpClient | undefined;
  const browser: Browser = {
    get cdp(): CdpClient {
      if (cdp === undefined) throw new Error('the browser is not started yet (use it inside a test)');
      return cdp;
    },
  };
  describe(title, () => {
    beforeAll(async () => {
      chromium = await launchChromium(binary);
      cdp = await CdpClient.connect(chromium.wsUrl);
    });
    afterAll(async () => {
      await cdp?.close().catch(() => {});
      await chromium?.close();
    });
    body(browser);
  });
}
