// A TCP proxy a test puts between a worker and one real service (the Hardhat node's RPC, a Kubo
// API) so that it can cut the service off and bring it back without touching the service itself,
// which other tests share. Cut: the listener closes (new connections are refused, as from a
// stopped daemon) and every open connection is destroyed. Restore: it listens again on the same
// port.
import net from "node:net";

export class TcpProxy {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** Connections accepted since start, for tests that want to see the client come back. */
  connections = 0;

  constructor(
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  /** The proxy's address in the form of `url` (same scheme and path, the proxy's port). */
  static forUrl(url: string, port: number): { proxy: TcpProxy; url: string } {
    const parsed = new URL(url);
    const target = { host: parsed.hostname, port: Number(parsed.port) };
    parsed.port = String(port);
    parsed.hostname = "127.0.0.1";
    return { proxy: new TcpProxy(port, target), url: parsed.toString().replace(/\/$/, "") };
  }

  get up(): boolean {
    return this.server !== undefined;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = net.createServer((client) => {
      this.connections++;
      const upstream = net.connect(this.target);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.once("close", () => this.sockets.delete(socket));
        socket.on("error", () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.once("close", () => upstream.destroy());
      upstream.once("close", () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.server = server;
  }

  /** Refuses new connections and breaks the open ones. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  restore(): Promise<void> {
    return this.start();
  }
}
