/**
 * A TCP proxy on a free loopback port that can break the link between a client and a server on
 * demand, for fault tests (Redis today, the cluster tests later):
 *
 *   - forward:  bytes flow both ways (the default);
 *   - blackhole(): bytes are held in both directions, as in a network partition, where TCP keeps
 *     retransmitting; heal() delivers what was held, in order, and forwards again. New connections
 *     are accepted but held too (the client's connect succeeds, nothing gets through);
 *   - cut(): every open link is destroyed at once (the client sees a reset, the server a close);
 *   - closeOnAccept(true): new connections are accepted and closed at once, like a server that
 *     accepts and immediately drops (a proxy without a backend, a server at maxclients);
 *   - retarget(): later connections go to another port (failover).
 *
 * Counters (accepted, open) and waitForAccepted(n) let a test await connection attempts instead of
 * sleeping.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

interface Link {
  readonly client: Socket;
  readonly server: Socket;
  /** Bytes held while blackholed, per direction. */
  toServer: Buffer[];
  toClient: Buffer[];
}

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted since the start. */
  readonly accepted: number;
  /** Links open now. */
  readonly open: number;
  readonly blackholed: boolean;
  blackhole(): void;
  heal(): void;
  /** Destroys every open link; returns how many. */
  cut(): number;
  closeOnAccept(on: boolean): void;
  retarget(port: number, host?: string): void;
  /** Resolves once `count` connections in total have been accepted. */
  waitForAccepted(count: number): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const links = new Set<Link>();
  let target = { host: targetHost, port: targetPort };
  let holding = false;
  let rejecting = false;
  let accepted = 0;
  let waiters: { count: number; resolve: () => void }[] = [];

  const server: Server = createServer((client) => {
    accepted++;
    waiters = waiters.filter((w) => (w.count <= accepted ? (w.resolve(), false) : true));
    client.on('error', () => undefined);
    if (rejecting) {
      client.destroy();
      return;
    }
    const upstream = connect(target);
    upstream.on('error', () => undefined);
    const link: Link = { client, server: upstream, toServer: [], toClient: [] };
    links.add(link);
    client.on('data', (chunk: Buffer) => (holding ? link.toServer.push(chunk) : upstream.write(chunk)));
    upstream.on('data', (chunk: Buffer) => (holding ? link.toClient.push(chunk) : client.write(chunk)));
    const drop = (): void => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', drop);
    upstream.on('close', drop);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as { port: number }).port;

  return {
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return links.size;
    },
    get blackholed() {
      return holding;
    },
    blackhole: () => {
      holding = true;
    },
    heal: () => {
      holding = false;
      for (const link of links) {
        for (const chunk of link.toServer) link.server.write(chunk);
        for (const chunk of link.toClient) link.client.write(chunk);
        link.toServer = [];
        link.toClient = [];
      }
    },
    cut: () => {
      const n = links.size;
      for (const link of [...links]) {
        link.client.resetAndDestroy();
        link.server.destroy();
      }
      links.clear();
      return n;
    },
    closeOnAccept: (on) => {
      rejecting = on;
    },
    retarget: (newPort, newHost = '127.0.0.1') => {
      target = { host: newHost, port: newPort };
    },
    waitForAccepted: (count) =>
      count <= accepted ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve })),
    close: async () => {
      for (const link of [...links]) {
        link.client.destroy();
        link.server.destroy();
      }
      links.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
