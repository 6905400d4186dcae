// The ChainSource port's conformance suite against the ethers adapter and the real Hardhat node.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { DeviceRegistry__factory } from "../../../typechain-types";
import { contractsFromDeployment, createEthersChainSource } from "../../../workers/src";
import { chainSourceConformance } from "../../shared/chain-source-conformance";
import { chainWorld } from "../../shared/chain-world";

/** Dev account 13: no other test enrolls it. */
const OPERATOR = 13;
const logger = pino({ level: process.env.SHOAL_TEST_LOG ?? "silent" });

chainSourceConformance("ethers (Hardhat node)", async () => {
  const world = await chainWorld(OPERATOR);
  const dir = await mkdtemp(path.join(tmpdir(), "shoal-chain-source-conformance-"));
  const devices = DeviceRegistry__factory.connect(
    world.record.contracts.DeviceRegistry.address,
    world.operator,
  );
  const base = { chainId: world.chainId, ...contractsFromDeployment(world.record) };
  return {
    makeSource: ({ confirmations, state = "default" }) =>
      createEthersChainSource({
        rpcUrl: world.rpcUrl,
        logger,
        confirmations,
        dataDir: path.join(dir, state),
        pollIntervalMs: 50,
        ...base,
      }),
    async emit() {
      const receipt = await (await devices.heartbeat(world.deviceId)).wait();
      return receipt!.blockNumber;
    },
    mine: async (blocks) => void (await world.provider.send("hardhat_mine", [`0x${blocks.toString(16)}`])),
    async eventIds(toBlock) {
      const logs = await world.provider.getLogs({
        address: Object.values(base.contracts) as string[],
        fromBlock: base.startBlock,
        toBlock,
      });
      return logs.map((l) => `${world.chainId}:${l.transactionHash.toLowerCase()}:${l.index}`);
    },
    async teardown() {
      await world.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
