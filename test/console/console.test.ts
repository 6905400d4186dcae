// The console in a real browser (headless Chromium) against a running fleet: three device workers
// on the test run's Hardhat node, Kubo and Docker, and a private Mosquitto with a websockets
// listener. The page reads the chain and the broker itself; the test checks it against what a user
// would compare it with: the placement:history task, the chain after a scale transaction, and the
// page's own words once the broker is gone. Screenshots of every page go to
// <SHOAL_HOME>/artifacts/console (docs/console.md shows copies).
import { expect } from "chai";
import Docker from "dockerode";
import { Contract, NonceManager, Wallet } from "ethers";
import mqtt from "mqtt";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { serveConsole, type ConsoleServer } from "../../console/serve";
import { connectContracts, livePlacements, type Contracts } from "../../scripts/fleet/chain";
import { deployDemo, startFleet, tail, type Fleet } from "../../scripts/fleet/fleet";
import { devWallet, runHardhat } from "../../scripts/lib/local-chain";
import type { TimelineRow } from "../../tasks/lib/timeline";
import { firstFreeDeviceId } from "../shared/fleet";
import { freePort, PrivateBroker, waitFor } from "../shared/processes";
import { requireChain, requireDocker, requireKubo, serviceUrls } from "../shared/services";
import { createSealer } from "../../workers/src";
import { launchChromium } from "./browser";

const urls = serviceUrls();
const ROOT = path.resolve(__dirname, "../..");
const ARTIFACTS = path.join(process.env.SHOAL_HOME ?? path.join(ROOT, ".shoal/test"), "artifacts/console");
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
/** The page gets the broker URL with a viewer's credentials in it, as scripts/services.sh gives it. */
const PASSWORD = "not-shown-anywhere";

describe("console: the static web app in headless Chromium against a running fleet", function () {
  this.timeout(60_000);

  const docker = new Docker({ socketPath: urls.dockerSocket });
  const log: string[] = [];
  let dir: string;
  let broker: PrivateBroker;
  let fleet: Fleet;
  let server: ConsoleServer;
  let browser: Browser;
  let chain: Contracts;
  let deploymentsFile: string;
  let webDeployment: number;
  const env = () => ({ SHOAL_DEPLOYMENTS_DIR: dir, SHOAL_KUBO_URL: urls.kuboUrl });

  async function open(route: string, viewport = DESKTOP): Promise<Page> {
    const page = await browser.newPage({ viewport });
    page.on("pageerror", (e) => log.push(`page error: ${e.message}`));
    await page.goto(`${server.url}${route}`);
    return page;
  }
  /** Waits until the page has read the chain at (or past) `block`. */
  async function readAt(page: Page, block: number, timeout = 10_000): Promise<void> {
    // Evaluated in the page (a string: this file is type-checked without the DOM's types).
    await page.waitForFunction(`Number(document.body.dataset.block ?? -1) >= ${block}`, undefined, {
      timeout,
    });
  }
  async function shot(page: Page, name: string): Promise<void> {
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: name.endsWith("-phone") });
  }

  before(async function () {
    this.timeout(240_000);
    await Promise.all([requireChain(urls), requireKubo(urls), requireDocker(urls)]);
    const built = await runBuild();
    expect(built.status, built.output).to.equal(0);
    dir = await mkdtemp(path.join(tmpdir(), "shoal-console-"));
    broker = new PrivateBroker(await freePort(), dir, await freePort());
    await broker.start();
    const deployed = await runHardhat(["run", "scripts/deploy.ts"], { ...env(), SHOAL_HEARTBEAT_TTL: "20" });
    expect(deployed.status, deployed.stderr).to.equal(0);
    deploymentsFile = path.join(dir, "localhost.json");
    fleet = await startFleet({
      devices: 3,
      rpcUrl: urls.rpcUrl,
      kuboUrl: urls.kuboUrl,
      mqttUrl: broker.url,
      dockerSocket: urls.dockerSocket,
      deploymentsFile,
      dataDir: path.join(dir, "fleet"),
      firstDeviceId: await firstFreeDeviceId(docker),
      onProgress: (line) => log.push(line),
    });
    await deployDemo(fleet, ["demo-web", "demo-loadgen"], (line) => log.push(line));
    webDeployment = fleet.state.demo["demo-web"];
    chain = connectContracts(urls.rpcUrl, JSON.parse(readFileSync(deploymentsFile, "utf8")));
    await waitFor(
      "demo-web's 2 replicas and demo-loadgen's 1 Running",
      async () => {
        const web = await livePlacements(chain, webDeployment);
        const load = await livePlacements(chain, fleet.state.demo["demo-loadgen"]);
        return [...web, ...load].length === 3 && [...web, ...load].every((p) => p.state === "Running");
      },
      120_000,
      500,
    );
    // The private broker takes anyone; the credentials are there to check that none is ever shown.
    server = await serveConsole({
      port: 0,
      deploymentsFile,
      rpcUrl: urls.rpcUrl,
      mqttUrl: broker.wsUrl.replace("ws://", `ws://shoal-viewer:${PASSWORD}@`),
    });
    browser = await launchChromium();
  });

  afterEach(function () {
    if (this.currentTest?.state !== "failed") return;
    console.log(`--- console test log ---\n${log.slice(-30).join("\n")}`);
    for (const d of fleet?.state.devices ?? [])
      console.log(`--- device ${d.deviceId} ---\n${tail(d.logFile, 10)}`);
  });

  after(async function () {
    this.timeout(120_000);
    await browser?.close();
    await server?.close();
    chain?.close();
    await fleet?.stop();
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("fleet page: every device with capacity, reservations, stake, heartbeat and online presence signed by its operator", async function () {
    const page = await open("#/fleet");
    const block = await chain.provider.getBlockNumber();
    await readAt(page, block);
    const ids = fleet.state.devices.map((d) => d.deviceId);
    for (const id of ids) {
      const row = page.locator(`#devices tr[data-device="${id}"]`);
      const usage = await chain.placements.deviceUsage(id);
      const device = await chain.devices.device(id);
      await waitFor(`device ${id}'s row`, async () =>
        (await row.locator('[data-field="online"]').textContent())?.startsWith("online"),
      );
      expect(await row.locator('[data-field="stake"]').textContent()).to.equal(
        String(device.stake / 10n ** 18n),
      );
      expect(await row.locator('[data-field="placements"]').textContent()).to.equal(
        String(usage.livePlacements),
      );
      expect(await row.locator('[data-field="heartbeat"]').textContent()).to.match(/^\d+ s$/);
      // Presence is believed because the device's operator on chain signed it.
      const badge = row.locator('[data-field="signature"]');
      await waitFor(
        `device ${id}'s presence verified`,
        async () => (await badge.getAttribute("data-signer")) !== "",
      );
      expect((await badge.getAttribute("data-signer"))?.toLowerCase()).to.equal(
        device.operator.toLowerCase(),
      );
      expect(await badge.textContent()).to.match(/^signed by operator 0x/);
    }
    await shot(page, "fleet");
    await page.setViewportSize(PHONE);
    await shot(page, "fleet-phone");
    await page.close();
  });

  it("a forged presence (unsigned, or signed by a key that is not the operator's) is not believed, and is counted", async function () {
    const page = await open("#/fleet");
    await readAt(page, await chain.provider.getBlockNumber());
    const id = fleet.state.devices[0].deviceId;
    const row = page.locator(`#devices tr[data-device="${id}"]`);
    const online = row.locator('[data-field="online"]');
    const badge = row.locator('[data-field="signature"]');
    await waitFor(
      `device ${id} online and verified`,
      async () =>
        (await online.textContent())?.startsWith("online") &&
        (await badge.getAttribute("data-signer")) !== "",
    );
    expect(await badge.textContent()).not.to.include("dropped");

    const topic = `shoal/v1/devices/${id}/status`;
    const lie = JSON.stringify({
      v: 1,
      deviceId: String(id),
      status: "offline",
      reason: "forged",
      at: new Date().toISOString(),
    });
    const [signedByStranger] = createSealer({
      operatorKey: Wallet.createRandom().privateKey,
      deviceId: id,
    }).seal([{ topic, payload: lie, retain: false }]);
    const attacker = await mqtt.connectAsync(broker.url, { clientId: "console-test-attacker" });
    await attacker.publishAsync(topic, lie, { qos: 1 });
    await attacker.publishAsync(topic, signedByStranger, { qos: 1 });
    await attacker.endAsync();

    await badge.getByText(/2 dropped: unsigned 1, forged 1$/).waitFor({ timeout: 5_000 });
    expect(await online.textContent()).to.match(/^online/);
    expect(await page.locator("#drops").textContent()).to.match(/unsigned [1-9]\d*.*forged [1-9]/);
    await shot(page, "fleet-forged");
    await page.close();
  });

  it("the timeline's rows equal placement:history --json for the same app, and so does its JSON export", async function () {
    const cli = await runHardhat(["placement:history", "--app", "demo-web", "--json"], env());
    expect(cli.status, cli.stderr).to.equal(0);
    const expected = JSON.parse(cli.stdout) as TimelineRow[];
    expect(expected.length).to.be.at.least(4);

    const page = await open("#/timeline?app=demo-web");
    await readAt(page, Math.max(...expected.map((r) => r.block)));
    await page.waitForSelector("#timeline tbody tr[data-placement]");
    const shown = await page.$$eval("#timeline tbody tr[data-placement]", (trs) =>
      trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent ?? "")),
    );
    // What a user reads: block, event, placement, deployment, device, state, reason in each row.
    expect(shown.map((c) => [c[1], c[3], c[4], c[5], c[6], c[7], c[8]])).to.deep.equal(
      expected.map((r) => [
        r.block ? String(r.block) : "",
        r.event,
        String(r.placementId),
        String(r.deploymentId),
        String(r.deviceId),
        r.state,
        r.reason,
      ]),
    );
    const download = page.waitForEvent("download");
    await page.click("#export-json");
    const file = await (await download).path();
    expect(readFileSync(file, "utf8")).to.equal(cli.stdout);

    const csvDownload = page.waitForEvent("download");
    await page.click("#export-csv");
    const csv = readFileSync(await (await csvDownload).path(), "utf8")
      .trimEnd()
      .split("\r\n");
    expect(csv[0]).to.equal("time,block,tx,logIndex,event,placementId,deploymentId,deviceId,state,reason");
    expect(csv.length).to.equal(expected.length + 1);
    await shot(page, "timeline");
    await page.close();
  });

  it("a scale action shows up in the fleet and deployment pages within 2 s", async function () {
    const fleetView = await open("#/fleet");
    const appsView = await open("#/apps");
    await readAt(appsView, await chain.provider.getBlockNumber());
    const row = appsView.locator(`#deployments tr[data-deployment="${webDeployment}"]`);
    expect(await row.locator('[data-field="wanted"]').textContent()).to.equal("2");

    const owner = new NonceManager(devWallet(0).connect(chain.provider));
    const apps = new Contract(
      await chain.apps.getAddress(),
      ["function scaleDeployment(uint32 deploymentId, uint32 replicas)"],
      owner,
    );
    const scaled = await (await apps.scaleDeployment(webDeployment, 3)).wait();
    let t0 = Date.now();
    await row.locator('[data-field="wanted"]', { hasText: "3" }).waitFor({ timeout: 2_000 });
    log.push(`replicas wanted 3 shown ${Date.now() - t0} ms after the scale transaction was mined`);

    // The claim is the devices' work: once it is on chain, both pages show it within 2 s.
    const claimed = await waitFor(
      "a claim of the third replica",
      async () => {
        const logs = await chain.placements.queryFilter(
          chain.placements.filters.PlacementClaimed(undefined, webDeployment),
          scaled!.blockNumber,
        );
        return logs[0];
      },
      30_000,
      100,
    );
    t0 = Date.now();
    const deviceId = Number(claimed.args.deviceId);
    const usage = await chain.placements.deviceUsage(deviceId);
    await row.locator('[data-field="live"]', { hasText: "3" }).waitFor({ timeout: 2_000 });
    await fleetView
      .locator(`#devices tr[data-device="${deviceId}"] [data-field="placements"]`, {
        hasText: String(usage.livePlacements),
      })
      .waitFor({ timeout: 2_000 - (Date.now() - t0) });
    log.push(`the claim shown on both pages ${Date.now() - t0} ms after it was mined`);
    await shot(appsView, "apps");

    await (await apps.scaleDeployment(webDeployment, 2)).wait();
    await fleetView.close();
    await appsView.close();
  });

  it("device page: its chain facts, verified signer, slashes, placements and resource decisions as a chart", async function () {
    this.timeout(90_000);
    const [load] = await livePlacements(chain, fleet.state.demo["demo-loadgen"]);
    const page = await open(`#/device/${load.deviceId}`);
    await readAt(page, await chain.provider.getBlockNumber());
    await page.waitForSelector("#slashes");
    expect(await page.locator("#slashes").textContent()).to.include("never been slashed");
    const operator = (await chain.devices.device(load.deviceId)).operator;
    await page.locator(`[data-field="signature"][data-signer="${operator}"]`).waitFor({ timeout: 5_000 });
    await page.waitForSelector(`#timeline tr[data-placement="${load.placementId}"]`);
    // The load generator steps its CPU every 20 s: the resource manager follows with decisions.
    await page.waitForSelector("svg.chart path.series", { timeout: 75_000 });
    expect(await page.locator("#decisions tbody tr").count()).to.be.at.least(1);
    await shot(page, "device");
    await page.close();
  });

  it("with the broker stopped, the page says so and still shows chain data", async function () {
    const page = await open("#/fleet");
    await readAt(page, await chain.provider.getBlockNumber());
    await page.waitForFunction(`document.body.dataset.broker === "connected"`);
    await broker.stop();
    const banner = page.getByRole("alert");
    await banner.getByText("MQTT unreachable").waitFor({ timeout: 10_000 });
    // The broker's address without the viewer's password, which appears nowhere on the page.
    expect(await banner.textContent()).to.include(`the broker at ${broker.wsUrl} does not answer`);
    expect(await page.content()).not.to.include(PASSWORD);
    const block = await chain.provider.getBlockNumber();
    // Chain data still read, and fresh: the page reads blocks mined after the broker went.
    await readAt(page, block + 1, 30_000);
    for (const d of fleet.state.devices)
      expect(
        await page.locator(`#devices tr[data-device="${d.deviceId}"] [data-field="stake"]`).textContent(),
      ).to.match(/^\d+/);
    expect(await page.locator('#devices [data-field="online"]').first().textContent()).to.include("no MQTT");
    await shot(page, "broker-down");
    await page.close();
  });
});

function runBuild(): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn("npm", ["run", "-s", "build:console"], { cwd: ROOT });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c));
    child.stderr.on("data", (c: Buffer) => (output += c));
    child.on("close", (status: number | null) => resolve({ status, output }));
  });
}
