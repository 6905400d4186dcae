/**
 * The console's weight and speed: the size of the built files (raw and gzip) and, in headless
 * Chromium, the time to first contentful paint and to the fleet table filled from the chain.
 * Against the Hardhat node of SHOAL_RPC_URL with fresh contracts and three enrolled devices (and
 * the broker of SHOAL_MQTT_WS_URL when set). Writes bench/results/console.md.
 *
 *   source .shoal/env   # or .shoal/test/env
 *   npx ts-node --transpile-only bench/console.ts [--runs 7]
 */
import { Contract, JsonRpcProvider, NonceManager, parseUnits } from "ethers";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { CONSOLE_DIR, serveConsole } from "../console/serve";
import { devWallet, runHardhat } from "../scripts/lib/local-chain";
import { launchChromium } from "../test/console/browser";

const ROOT = path.resolve(__dirname, "..");
const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 7;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const rpcUrl = process.env.SHOAL_RPC_URL ?? "http://127.0.0.1:8545";
  const mqttUrl = process.env.SHOAL_MQTT_WS_URL ?? "";
  const built = spawnSync("npm", ["run", "-s", "build:console"], { cwd: ROOT, encoding: "utf8" });
  if (built.status !== 0) throw new Error(`build:console failed:\n${built.stdout}${built.stderr}`);
  const sizes = files(CONSOLE_DIR).map((f) => {
    const body = readFileSync(f);
    return {
      file: path.relative(CONSOLE_DIR, f),
      raw: body.length,
      gzip: gzipSync(body, { level: 9 }).length,
    };
  });

  const dir = mkdtempSync(path.join(tmpdir(), "shoal-bench-console-"));
  const deployed = await runHardhat(["run", "scripts/deploy.ts"], { SHOAL_DEPLOYMENTS_DIR: dir });
  if (deployed.status !== 0) throw new Error(`deploy failed: ${deployed.stderr}`);
  const record = JSON.parse(readFileSync(path.join(dir, "localhost.json"), "utf8"));
  const provider = new JsonRpcProvider(rpcUrl, record.chainId, { staticNetwork: true });
  const registry = record.contracts.DeviceRegistry.address as string;
  for (const account of [1, 2, 3]) {
    const signer = new NonceManager(devWallet(account).connect(provider));
    const token = new Contract(
      record.contracts.ShoalToken.address,
      ["function approve(address,uint256)"],
      signer,
    );
    const devices = new Contract(
      registry,
      ["function enroll(address,string,uint32,uint32,string[],string,uint256)"],
      signer,
    );
    const stake = parseUnits("150", 18);
    await (await token.approve(registry, stake)).wait();
    await (
      await devices.enroll(
        devWallet(account).address,
        "linux/amd64",
        1000,
        512,
        ["size=bench"],
        "/ip4/127.0.0.1/tcp/4001",
        stake,
      )
    ).wait();
  }
  provider.destroy();

  const server = await serveConsole({
    port: 0,
    deploymentsFile: path.join(dir, "localhost.json"),
    rpcUrl,
    mqttUrl,
  });
  const browser = await launchChromium();
  const fcp: number[] = [];
  const data: number[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      await page.goto(`${server.url}#/fleet`);
      await page.waitForSelector('#devices tr[data-device="3"]', { timeout: 30_000 });
      const t = (await page.evaluate(`(() => ({
        data: performance.now(),
        fcp: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? NaN,
      }))()`)) as { data: number; fcp: number };
      fcp.push(t.fcp);
      data.push(t.data);
      await context.close();
    }
  } finally {
    await browser.close();
    await server.close();
  }

  const kB = (n: number) => (n / 1024).toFixed(1);
  const total = sizes.reduce((a, s) => ({ raw: a.raw + s.raw, gzip: a.gzip + s.gzip }), { raw: 0, gzip: 0 });
  const md = `# Console: bundle size and time to first render

Command: \`source .shoal/test/env && npx ts-node --transpile-only bench/console.ts --runs ${RUNS}\`
(${new Date().toISOString().slice(0, 10)}, Chromium ${browser.version()}, Node ${process.version}, 2 cores shared with
other jobs; a Hardhat node on loopback with fresh contracts and 3 enrolled devices${mqttUrl ? ", Mosquitto websockets on loopback" : ", no broker"}).

## Built files (\`npm run build:console\`, dist/console)

| file | raw kB | gzip kB |
| --- | ---: | ---: |
${sizes.map((s) => `| ${s.file} | ${kB(s.raw)} | ${kB(s.gzip)} |`).join("\n")}
| **total** | **${kB(total.raw)}** | **${kB(total.gzip)}** |

The script is ethers (ABI coding, JSON-RPC) and MQTT.js (its browser build) with the console's
own code; no UI framework, no chart library (the chart is SVG drawn by console/src/chart.ts).

## Time to first render (fleet page, ${RUNS} cold loads, 1280×800)

| measure | median ms | min ms | max ms |
| --- | ---: | ---: | ---: |
| first contentful paint | ${median(fcp).toFixed(0)} | ${Math.min(...fcp).toFixed(0)} | ${Math.max(...fcp).toFixed(0)} |
| fleet table filled from the chain | ${median(data).toFixed(0)} | ${Math.min(...data).toFixed(0)} | ${Math.max(...data).toFixed(0)} |

"Filled" is the moment the third device's row is in the page: configuration fetched, the head
block and the devices' views read over JSON-RPC (three round trips, calls batched) and the table drawn.
`;
  writeFileSync(path.join(ROOT, "bench/results/console.md"), md);
  process.stdout.write(md);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
