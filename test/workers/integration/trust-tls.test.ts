// The TLS listener of docs/mqtt.md ("Authentication and ACL", TLS), checked on a Mosquitto of this
// test's own: a private CA and a server certificate for 127.0.0.1 made with openssl, the dynamic
// security plugin with one user. A client that trusts the CA and logs in gets through; one that
// does not trust it, or has no credentials, does not; and plain MQTT is not served on that port.
import { expect } from "chai";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import mqtt from "mqtt";
import { freePort, waitFor } from "../../shared/processes";

const PLUGIN = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"]
  .map((d) => `${d}/mosquitto_dynamic_security.so`)
  .find(existsSync);

describe("trust: Mosquitto TLS listener with the dynamic security plugin", function () {
  this.timeout(60_000);
  let dir: string;
  let port: number;
  let broker: ChildProcess | undefined;
  let ca: Buffer;

  before(async function () {
    if (!PLUGIN) throw new Error("mosquitto_dynamic_security.so not found; install mosquitto 2");
    dir = mkdtempSync(path.join(tmpdir(), "shoal-tls-"));
    const run = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
    run(
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=shoal test CA"].concat([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
      ]),
    );
    run([
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      "/CN=127.0.0.1",
      "-keyout",
      "server.key",
      "-out",
      "server.csr",
    ]);
    writeFileSync(path.join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
    run(
      ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"].concat([
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
      ]),
    );
    ca = readFileSync(path.join(dir, "ca.crt"));
    execFileSync(
      "mosquitto_ctrl",
      ["dynsec", "init", path.join(dir, "dynsec.json"), "tls-user", "tls-pass"],
      {
        stdio: "pipe",
      },
    );
    port = await freePort();
    writeFileSync(
      path.join(dir, "mosquitto.conf"),
      [
        "per_listener_settings false",
        "allow_anonymous false",
        `plugin ${PLUGIN}`,
        `plugin_opt_config_file ${dir}/dynsec.json`,
        `listener ${port} 127.0.0.1`,
        `certfile ${dir}/server.crt`,
        `keyfile ${dir}/server.key`,
        "tls_version tlsv1.2",
        "user root",
        "",
      ].join("\n"),
    );
    const bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].find(existsSync) ?? "mosquitto";
    broker = spawn(bin, ["-c", path.join(dir, "mosquitto.conf")], { stdio: "ignore" });
    await waitFor(
      "the TLS broker",
      () =>
        mqtt
          .connectAsync(`mqtts://127.0.0.1:${port}`, {
            ca,
            username: "tls-user",
            password: "tls-pass",
            reconnectPeriod: 0,
          })
          .then(async (c) => (await c.endAsync(), true)),
      15_000,
      200,
    );
  });

  after(async function () {
    broker?.kill("SIGTERM");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const attempt = (url: string, options: mqtt.IClientOptions) =>
    mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...options }).then(
      async (client) => (await client.endAsync(), "connected"),
      (error: Error) => error.message,
    );

  it("admits a client that trusts the CA and logs in, and publishes and receives over TLS", async function () {
    const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, {
      ca,
      username: "tls-user",
      password: "tls-pass",
      reconnectPeriod: 0,
    });
    try {
      // The init user administers the plugin; its role reads and subscribes to everything.
      await client.subscribeAsync("$CONTROL/dynamic-security/v1/response", { qos: 1 });
      const answer = new Promise<string>((resolve) => client.on("message", (_t, p) => resolve(p.toString())));
      await client.publishAsync(
        "$CONTROL/dynamic-security/v1",
        JSON.stringify({ commands: [{ command: "listClients" }] }),
      );
      expect(JSON.parse(await answer).responses[0].data.clients).to.include("tls-user");
    } finally {
      await client.endAsync();
    }
  });

  it("refuses a client that does not trust the CA, a client without credentials, and plain MQTT", async function () {
    expect(
      await attempt(`mqtts://127.0.0.1:${port}`, { username: "tls-user", password: "tls-pass" }),
    ).to.match(/self[- ]signed|unable to verify|certificate/i);
    expect(await attempt(`mqtts://127.0.0.1:${port}`, { ca })).to.match(/not authori[sz]ed/i);
    expect(
      await attempt(`mqtt://127.0.0.1:${port}`, {
        username: "tls-user",
        password: "tls-pass",
        connectTimeout: 3_000,
      }),
    ).not.to.equal("connected");
  });
});
