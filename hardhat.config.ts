import type { HardhatUserConfig } from "hardhat/config";
import { subtask } from "hardhat/config";
import { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } from "hardhat/builtin-tasks/task-names";
import "@nomicfoundation/hardhat-chai-matchers";
import "@nomicfoundation/hardhat-ethers";
import "@typechain/hardhat";
import "solidity-coverage";
import "./tasks";

// Never import typechain-types here or from anything this file loads: a clean checkout has none
// until the first compile. Tasks load them with dynamic import() inside their actions.

/** The one compiler version this project ships, as the npm `solc` package (soljson.js). */
const SOLC_VERSION = "0.8.28";

// Hardhat downloads compilers from binaries.soliditylang.org, which is unreachable here. Serve the
// pinned version from node_modules instead, and refuse any other version with a clear message.
subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args: { solcVersion: string }) => {
  if (args.solcVersion !== SOLC_VERSION) {
    throw new Error(
      `solc ${args.solcVersion} was requested, but Shoal compiles offline with the npm solc package, ` +
        `which is pinned to ${SOLC_VERSION}; set solidity.version to "${SOLC_VERSION}" in hardhat.config.ts`,
    );
  }
  const solcPackage = require.resolve("solc/package.json");
  return {
    compilerPath: require.resolve("solc/soljson.js", { paths: [solcPackage] }),
    isSolcJs: true,
    version: SOLC_VERSION,
    longVersion: require("solc").version() as string,
  };
});

const localhostUrl = process.env.SHOAL_RPC_URL ?? "http://127.0.0.1:8545";

const config: HardhatUserConfig = {
  solidity: {
    version: SOLC_VERSION,
    settings: {
      // Hardhat 2 defaults to paris; OpenZeppelin 5 uses mcopy/tstore, which need cancun.
      evmVersion: "cancun",
      optimizer: { enabled: true, runs: 200 },
    },
  },
  networks: {
    hardhat: {},
    // No keep-alive: a task whose event loop stalls past the node's 5 s keep-alive timeout (a busy
    // machine, a long IPFS upload) would reuse a socket the node closed: "SocketError: other side closed".
    localhost: { url: localhostUrl, httpHeaders: { Connection: "close" } },
  },
  paths: {
    sources: "contracts",
    tests: "test",
    cache: "cache",
    artifacts: "artifacts",
  },
  typechain: {
    outDir: "typechain-types",
    target: "ethers-v6",
  },
  mocha: {
    timeout: 120_000,
    reporter: require.resolve("./test/shared/summary-reporter.js"),
    // A left-over `.only` would run a handful of tests and pass (issue 13); in CI a pending
    // (skipped) test fails the run too. ESLint's mocha rules catch both before a run.
    forbidOnly: true,
    forbidPending: process.env.CI === "true",
    rootHooks: {
      // Deployment networks (issue 15) left by tests that removed their containers themselves.
      async afterAll() {
        const cleanup =
          require("./test/shared/network-cleanup") as typeof import("./test/shared/network-cleanup");
        await cleanup.removeLeftoverNetworks();
      },
    },
  },
};

export default config;
