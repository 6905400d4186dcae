import { expect } from "chai";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ConfigError, loadConfig } from "../../../workers/src";

const KEY = "0x" + "ab".repeat(32);
const base = { SHOAL_OPERATOR_KEY: KEY, SHOAL_DEVICE_ID: "3" };

describe("worker config", function () {
  it("fills defaults, resolves paths and lets the environment win over the file", function () {
    const dir = mkdtempSync(path.join(tmpdir(), "shoal-config-"));
    const file = path.join(dir, "worker.json");
    writeFileSync(
      file,
      JSON.stringify({ deviceId: 9, confirmations: 2, claim: { maxDelayMs: 500 }, dataDir: "state" }),
    );
    const config = loadConfig({ file, env: base, cwd: "/srv/shoal" });
    expect(config.deviceId).to.equal(3);
    expect(config.confirmations).to.equal(2);
    expect(config.claim).to.deep.equal({ enabled: true, maxDelayMs: 500, jitterMs: 250 });
    expect(config.dataDir).to.equal("/srv/shoal/state");
    expect(config.deploymentsFile).to.equal("/srv/shoal/deployments/localhost.json");
    expect(config.mqttUrl).to.equal("mqtt://127.0.0.1:1883");
  });

  it("takes broker credentials from the URL or their own settings and keeps them out of the URL", function () {
    const fromUrl = loadConfig({ env: { ...base, SHOAL_MQTT_URL: "mqtts://device-7:p%40ss@broker:8883" } });
    expect([fromUrl.mqttUrl, fromUrl.mqttUsername, fromUrl.mqttPassword]).to.deep.equal([
      "mqtts://broker:8883",
      "device-7",
      "p@ss",
    ]);
    const explicit = loadConfig({
      env: { ...base, SHOAL_MQTT_URL: "mqtt://u:x@h:1", SHOAL_MQTT_USERNAME: "v", SHOAL_MQTT_PASSWORD: "y" },
    });
    expect([explicit.mqttUrl, explicit.mqttUsername, explicit.mqttPassword]).to.deep.equal([
      "mqtt://h:1",
      "v",
      "y",
    ]);
    expect(loadConfig({ env: base })).not.to.have.any.keys("mqttUsername", "mqttPassword");
  });

  const cases: Array<[string, NodeJS.ProcessEnv, string]> = [
    [
      "a missing key",
      { SHOAL_DEVICE_ID: "1" },
      "operatorKey: undefined is not allowed; set SHOAL_OPERATOR_KEY",
    ],
    [
      "a malformed key, without echoing it",
      { ...base, SHOAL_OPERATOR_KEY: "0xsecret" },
      "operatorKey: the value is not a private key; use 0x followed by 64 hex digits",
    ],
    [
      "a device id of 0",
      { ...base, SHOAL_DEVICE_ID: "0" },
      'deviceId: "0" is not allowed; use a whole number from 1 to 4294967295',
    ],
    [
      "an http MQTT URL",
      { ...base, SHOAL_MQTT_URL: "http://127.0.0.1:1883" },
      'mqttUrl: "http://127.0.0.1:1883" is not allowed; use a mqtt: or mqtts: or ws: or wss: URL',
    ],
    [
      "a fractional poll interval",
      { ...base, SHOAL_POLL_INTERVAL_MS: "1.5" },
      'pollIntervalMs: "1.5" is not allowed; use a whole number from 50 to 600000',
    ],
    [
      "a peer cap of 0",
      { ...base, SHOAL_PEERING_MAX_PEERS: "0" },
      'peering.maxPeers: "0" is not allowed; use a whole number from 1 to 1000',
    ],
    [
      "a peering switch that is not a boolean",
      { ...base, SHOAL_PEERING_UPDATE_ENDPOINT: "maybe" },
      'peering.updateEndpoint: "maybe" is not allowed',
    ],
    [
      "an unknown log level",
      { ...base, SHOAL_LOG_LEVEL: "loud" },
      'logLevel: "loud" is not allowed; use one of fatal, error, warn, info, debug, trace',
    ],
  ];
  for (const [name, env, message] of cases) {
    it(`refuses ${name}`, function () {
      expect(() => loadConfig({ env }))
        .to.throw(ConfigError)
        .with.property("message")
        .that.satisfies((m: string) => m.startsWith(message));
    });
  }

  it("never echoes a malformed key, in the message or anything it carries", function () {
    // A key with one digit short: the secret is in it whole but for that digit.
    const secret = "0x" + "5f".repeat(31) + "a";
    let error: unknown;
    try {
      loadConfig({ env: { ...base, SHOAL_OPERATOR_KEY: secret } });
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(ConfigError);
    let everything = "";
    for (let e: unknown = error; e instanceof Error; e = e.cause) {
      everything += JSON.stringify(e, Object.getOwnPropertyNames(e)) + String(e.stack);
    }
    expect(everything).to.include("operatorKey");
    expect(everything).to.not.include(secret.slice(2, 20));
  });

  it("refuses unknown settings in the file, naming the known ones", function () {
    const dir = mkdtempSync(path.join(tmpdir(), "shoal-config-"));
    const file = path.join(dir, "worker.json");
    writeFileSync(file, JSON.stringify({ rpcURL: "http://x" }));
    expect(() => loadConfig({ file, env: base })).to.throw(
      ConfigError,
      /^rpcURL: "http:\/\/x" is not allowed; it is not a worker setting; known settings: bridge, claim, /,
    );
  });
});
