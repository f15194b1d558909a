/**
 * A minimal Chrome DevTools Protocol client on our own WebSocket codec (`connect()` from
 * src/websocket), for the browser test. CDP is JSON over WebSocket text messages: requests
 * {id, method, params, sessionId?}, responses {id, result | error}, events {method, params, sessionId?}.
 * One browser-level connection; each page is a target attached with `flatten: true`, so its
 * commands and events travel on the same socket, tagged with the page's sessionId.
 */
import { writeFileSync } from 'node:fs';
import { connect, type WebSocketConnection } from '../../src/websocket';

export interface CdpEvent {
  readonly method: string;
  readonly params: Record<string, unknown>;
  readonly sessionId?: string;
}

interface Pending {
  readonly method: string;
  resolve(result: unknown): void;
  reject(error: Error): void;
}

export class CdpClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<(event: CdpEvent) => void>();
  private readonly reading: Promise<void>;

  private constructor(private readonly conn: WebSocketConnection) {
    this.reading = this.readLoop();
  }

  static async connect(wsUrl: string): Promise<CdpClient> {
    // Screenshots arrive as one base64 message of several MiB.
    return new CdpClient(await connect(wsUrl, { maxMessageBytes: 64 * 1024 * 1024 }));
  }

  send<T = Record<string, unknown>>(method: string, params: object = {}, sessionId?: string): Promise<T> {
    const id = this.nextId++;
    const request = sessionId === undefined ? { id, method, params } : { id, method, params, sessionId };
    return new Promise<T>((resolve, reject) => {
      if (this.conn.readyState !== 'open') {
        reject(new Error(`CDP ${method}: connection closed`));
        return;
      }
      this.pending.set(id, { method, resolve: resolve as (r: unknown) => void, reject });
      this.conn.send(JSON.stringify(request));
    });
  }

  /** Calls `listener` for every event; returns the unsubscribe function. */
  on(listener: (event: CdpEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The next event that matches (subscribe before the command that causes it). */
  nextEvent(match: (event: CdpEvent) => boolean): Promise<CdpEvent> {
    return new Promise((resolve) => {
      const off = this.on((event) => {
        if (!match(event)) return;
        off();
        resolve(event);
      });
    });
  }

  async close(): Promise<void> {
    this.conn.close(1000, '');
    await this.conn.closed;
    await this.reading;
  }

  private async readLoop(): Promise<void> {
    for await (const message of this.conn) {
      if (message.binary) continue;
      const frame = JSON.parse(message.data) as {
        id?: number;
        result?: unknown;
        error?: { code: number; message: string; data?: string };
        method?: string;
        params?: Record<string, unknown>;
        sessionId?: string;
      };
      if (frame.id !== undefined) {
        const waiter = this.pending.get(frame.id);
        if (waiter === undefined) continue;
        this.pending.delete(frame.id);
        if (frame.error) {
          const data = frame.error.data ? ` (${frame.error.data})` : '';
          waiter.reject(new Error(`CDP ${waiter.method}: ${frame.error.message}${data}`));
        } else {
          waiter.resolve(frame.result ?? {});
        }
      } else if (frame.method !== undefined) {
        const session = frame.sessionId ? { sessionId: frame.sessionId } : {};
        const event: CdpEvent = { method: frame.method, params: frame.params ?? {}, ...session };
        for (const listener of this.listeners) listener(event);
      }
    }
    const info = await this.conn.closed;
    for (const waiter of this.pending.values()) {
      waiter.reject(new Error(`CDP ${waiter.method}: connection closed (${info.code})`));
    }
    this.pending.clear();
  }
}

/** Something the page reported as an error: console.error, an uncaught exception, a CSP violation. */
export interface PageProblem {
  readonly level: 'error' | 'warning';
  readonly source: string;
  readonly text: string;
}

interface RemoteObject {
  type: string;
  value?: unknown;
  description?: string;
}
interface EvaluateResult {
  result: RemoteObject;
  exceptionDetails?: { text: string; exception?: RemoteObject };
}

/** One browser tab, attached over a flat session. */
export class CdpPage {
  /** Errors and warnings the page logged, in order. */
  readonly problems: PageProblem[] = [];
  /** close() was called. */
  closed = false;
  private readonly unsubscribe: () => void;

  private constructor(
    readonly cdp: CdpClient,
    readonly targetId: string,
    readonly sessionId: string,
  ) {
    this.unsubscribe = cdp.on((e) => {
      if (e.sessionId !== sessionId) return;
      const p = e.params;
      if (e.method === 'Runtime.consoleAPICalled' && ['error', 'assert', 'warning'].includes(p.type as string)) {
        const args = (p.args as RemoteObject[]).map((a) =>
          a.value !== undefined ? String(a.value) : (a.description ?? a.type),
        );
        const level = p.type === 'warning' ? 'warning' : 'error';
        this.problems.push({ level, source: `console.${String(p.type)}`, text: args.join(' ') });
      } else if (e.method === 'Runtime.exceptionThrown') {
        const d = p.exceptionDetails as EvaluateResult['exceptionDetails'];
        const text = d?.exception?.description ?? d?.text ?? 'exception';
        this.problems.push({ level: 'error', source: 'exception', text });
      } else if (e.method === 'Log.entryAdded') {
        const entry = p.entry as { level: string; source: string; text: string; url?: string };
        if (entry.level === 'error' || entry.level === 'warning') {
          const text = `${entry.text}${entry.url ? ` (${entry.url})` : ''}`;
          this.problems.push({ level: entry.level as 'error' | 'warning', source: `log.${entry.source}`, text });
        }
      }
    });
  }

  /** Opens a blank tab, attaches to it and turns on the domains the test listens to. */
  static async open(cdp: CdpClient, width = 1280, height = 800): Promise<CdpPage> {
    const { targetId } = await cdp.send<{ targetId: string }>('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await cdp.send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true });
    const page = new CdpPage(cdp, targetId, sessionId);
    await Promise.all([
      page.send('Runtime.enable'),
      page.send('Log.enable'),
      page.send('Page.enable'),
      // Every tab behaves as if it had focus, so focus() and key events work in background tabs.
      page.send('Emulation.setFocusEmulationEnabled', { enabled: true }),
      page.viewport(width, height),
      // CSP violations as the page sees them (CDP-injected scripts are not subject to the page's CSP).
      page.send('Page.addScriptToEvaluateOnNewDocument', {
        source:
          'window.__csp = []; document.addEventListener("securitypolicyviolation", ' +
          '(e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));',
      }),
    ]);
    return page;
  }

  send<T = Record<string, unknown>>(method: string, params: object = {}): Promise<T> {
    return this.cdp.send<T>(method, params, this.sessionId);
  }

  /** Navigates and waits for the new document's load event. */
  async goto(url: string): Promise<void> {
    const loaded = this.cdp.nextEvent((e) => e.sessionId === this.sessionId && e.method === 'Page.loadEventFired');
    const { errorText } = await this.send<{ errorText?: string }>('Page.navigate', { url });
    if (errorText !== undefined) throw new Error(`cannot load ${url}: ${errorText}`);
    await loaded;
  }

  /** Evaluates an expression in the page (promises awaited) and returns its JSON value. */
  async evaluate<T = unknown>(expression: string): Promise<T> {
    const params = { expression, awaitPromise: true, returnByValue: true };
    const r = await this.send<EvaluateResult>('Runtime.evaluate', params);
    if (r.exceptionDetails) {
      const why = r.exceptionDetails.exception?.description ?? r.exceptionDetails.text;
      throw new Error(`evaluate failed: ${why}\n  in: ${expression}`);
    }
    return r.result.value as T;
  }

  /**
   * Waits until `expression`, a condition on the DOM, is truthy; returns its value. The page checks
   * it now and again on every DOM mutation (a MutationObserver), so nothing is polled. On timeout it
   * fails with `what` and the value of `diagnose` (the page's log, say), so the failure says what the
   * page showed.
   */
  async waitFor<T = unknown>(expression: string, what: string, timeoutMs = 5_000, diagnose = 'null'): Promise<T> {
    const outcome = await this.evaluate<{ ok: boolean; value: unknown; seen?: unknown }>(`new Promise((resolve) => {
      const value = () => { try { return (${expression}); } catch { return undefined; } };
      const observer = new MutationObserver(() => check());
      const timer = setTimeout(() => {
        observer.disconnect();
        let seen;
        try { seen = (${diagnose}); } catch (e) { seen = String(e); }
        resolve({ ok: false, value: value(), seen });
      }, ${timeoutMs});
      const check = () => {
        const v = value();
        if (!v) return false;
        observer.disconnect();
        clearTimeout(timer);
        resolve({ ok: true, value: v });
        return true;
      };
      const everything = { subtree: true, childList: true, attributes: true, characterData: true };
      if (!check()) observer.observe(document, everything);
    })`);
    if (outcome.ok) return outcome.value as T;
    const seen = diagnose === 'null' ? '' : `\n  page: ${JSON.stringify(outcome.seen)}`;
    const last = JSON.stringify(outcome.value);
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last value ${last})${seen}`);
  }

  /** Waits for every running animation of the page (new log lines fade in) to finish. */
  async animationsDone(): Promise<void> {
    await this.evaluate('Promise.all(document.getAnimations().map((a) => a.finished)).then(() => true)');
  }

  /** Focuses `selector`, types `text` as real text input, and presses Enter when asked. */
  async type(selector: string, text: string, pressEnter = true): Promise<void> {
    const focused = await this.evaluate<boolean>(
      `(() => { const e = document.querySelector(${JSON.stringify(selector)}); if (!e) return false;
        e.focus(); return document.activeElement === e; })()`,
    );
    if (!focused) throw new Error(`cannot focus ${selector}`);
    if (text !== '') await this.send('Input.insertText', { text });
    if (pressEnter) await this.press('Enter');
  }

  async press(key: 'Enter'): Promise<void> {
    const k = { key, code: key, windowsVirtualKeyCode: 13, nativeVirtualKeyCode: 13 };
    await this.send('Input.dispatchKeyEvent', { type: 'keyDown', text: '\r', unmodifiedText: '\r', ...k });
    await this.send('Input.dispatchKeyEvent', { type: 'keyUp', ...k });
  }

  /** Clicks the element's centre with a real mouse event. */
  async click(selector: string): Promise<void> {
    const box = await this.evaluate<{ x: number; y: number } | null>(
      `(() => { const e = document.querySelector(${JSON.stringify(selector)}); if (!e) return null;
        e.scrollIntoView({ block: 'nearest' });
        const r = e.getBoundingClientRect(); return { x: r.left + r.width / 2, y: r.top + r.height / 2 }; })()`,
    );
    if (box === null) throw new Error(`no element ${selector}`);
    for (const type of ['mousePressed', 'mouseReleased']) {
      await this.send('Input.dispatchMouseEvent', { type, x: box.x, y: box.y, button: 'left', clickCount: 1 });
    }
  }

  viewport(width: number, height: number, mobile = false, deviceScaleFactor = 1): Promise<unknown> {
    return this.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor, mobile });
  }

  colorScheme(scheme: 'light' | 'dark'): Promise<unknown> {
    return this.send('Emulation.setEmulatedMedia', { features: [{ name: 'prefers-color-scheme', value: scheme }] });
  }

  async screenshot(file: string): Promise<void> {
    // A background tab renders no frames, so its screenshot would never come: bring it forward first.
    await this.send('Page.bringToFront');
    const { data } = await this.send<{ data: string }>('Page.captureScreenshot', { format: 'png' });
    writeFileSync(file, Buffer.from(data, 'base64'));
  }

  /** Closes the tab (the browser ends its WebSocket connections as a tab closing does). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    await this.cdp.send('Target.closeTarget', { targetId: this.targetId });
  }
}
