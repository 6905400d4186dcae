// solidity-coverage settings for `npm run coverage` (contracts suite only).
module.exports = {
  // Interfaces hold no code; mocks, if any are added, are test-only.
  skipFiles: ["interfaces/", "mocks/"],
  // The randomized and the 1,000-device tests run as usual; instrumentation only costs time.
  mocha: { timeout: 600_000 },
};
