// The worker's httpGet health checks against a real HTTP server on 127.0.0.1: Docker's semantics
// (retries failures in a row make unhealthy, one success makes healthy, redirects count as healthy
// and are never followed).
import { expect } from "chai";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { createHealthProber, probeOnce } from "../../../workers/src";
import { waitFor } from "../../shared/processes";

describe("health prober: the worker's httpGet checks (issue 15)", function () {
  this.timeout(30_000);
  let server: Server;
  let port: number;
  let status = 200;
  const paths: string[] = [];

  before(async () => {
    server = createServer((req, res) => {
      paths.push(req.url ?? "");
      if (status === 302) res.writeHead(302, { location: "http://169.254.169.254/" });
      else res.writeHead(status);
      res.end("ok");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("counts 2xx and 3xx as healthy and never follows a redirect", async () => {
    status = 302;
    expect(await probeOnce("127.0.0.1", { port, path: "/healthz", timeoutS: 2 })).to.deep.equal({
      ok: true,
      detail: "HTTP 302",
    });
    status = 503;
    expect((await probeOnce("127.0.0.1", { port, path: "/healthz", timeoutS: 2 })).ok).to.equal(false);
    expect(paths.every((p) => p === "/healthz")).to.equal(true);
  });

  it("turns unhealthy after `retries` failures in a row and healthy again after one success", async () => {
    const changes: string[] = [];
    const prober = createHealthProber({
      logger: pino({ level: "silent" }),
      onChange: (_id, health) => changes.push(health),
    });
    try {
      status = 200;
      const probe = { port, path: "/healthz", intervalS: 1, timeoutS: 1, retries: 2, startPeriodS: 0 };
      prober.sync([
        { containerId: "c1", placementId: "1", address: "127.0.0.1", probe, startedAt: undefined },
      ]);
      expect(prober.health("c1")).to.equal("starting");
      await waitFor("healthy", async () => prober.health("c1") === "healthy", 10_000, 100);
      status = 500;
      await waitFor("unhealthy", async () => prober.health("c1") === "unhealthy", 10_000, 100);
      status = 200;
      await waitFor("healthy again", async () => prober.health("c1") === "healthy", 10_000, 100);
      expect(changes).to.deep.equal(["healthy", "unhealthy", "healthy"]);
      prober.sync([]);
      expect(prober.health("c1")).to.equal(undefined);
    } finally {
      prober.close();
    }
  });
});
