// @ts-check
import eslint from "@eslint/js";
import tseslint from "typescript-eslint";
import mocha from "eslint-plugin-mocha";

// Layers of the worker (docs/architecture.md): domain (pure) <- ports <- services and adapters <- main
// (wiring only). `lib/` holds the supervision primitive and crash-safe JSON files,
// for services and adapters alike (bounded collections are pure: domain/bounded.ts). `errors.ts` is the one base error, importable from every layer. Each rule names
// the imports a folder must not make; a new arrow the wrong way fails `npm run lint`.
const LIBRARY_CLIENTS = ["ethers", "mqtt", "dockerode", "kubo-rpc-client", "pino", "prom-client"];
const IO_MODULES = ["fs", "fs/promises", "child_process", "net", "http", "https", "dgram", "os"].flatMap(
  (m) => [m, `node:${m}`],
);

/** A no-restricted-imports rule from [regex, why] pairs and banned module names. */
const restrict = (patterns, paths = []) => ({
  "no-restricted-imports": [
    "error",
    {
      paths: paths.map((name) => ({ name, message: "the domain is pure: no library client, no I/O" })),
      patterns: patterns.map(([regex, message]) => ({ regex, message })),
    },
  ],
});

const PUBLIC_ENTRY =
  "import the worker's code through its public entry point (workers/src/index.ts), never a deep path";

export default tseslint.config(
  { ignores: ["node_modules/", "artifacts/", "cache/", "typechain-types/", "coverage/", "dist/", ".shoal/"] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { require: "readonly", module: "writable", process: "readonly", __dirname: "readonly" },
    },
    rules: {
      "@typescript-eslint/no-require-imports": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  // Mocha: a test that cannot run fails, it is never skipped or left exclusive (issue 13). The
  // plugin's stylistic rules (arrows, setup in describe) are off: table-driven tests build cases
  // in describe() on purpose.
  {
    files: ["test/**/*.ts"],
    plugins: { mocha },
    rules: {
      "mocha/no-exclusive-tests": "error",
      "mocha/no-pending-tests": "error",
      "mocha/no-identical-title": "error",
      "mocha/no-nested-tests": "error",
      "mocha/no-empty-title": "error",
      "mocha/no-async-suite": "error",
      "mocha/no-global-tests": "error",
      "mocha/no-sibling-hooks": "error",
      "mocha/handle-done-callback": "error",
      "mocha/no-return-and-callback": "error",
      "no-restricted-syntax": [
        "error",
        {
          selector: "CallExpression[callee.object.type='ThisExpression'][callee.property.name='skip']",
          message: "A test that cannot run must fail, not skip itself: throw with the reason instead.",
        },
      ],
    },
  },
  {
    files: ["workers/src/domain/*.ts"],
    rules: restrict(
      [
        [
          "^\\.\\./(?!errors$)",
          "domain imports only the domain and ../errors (ports, adapters, services depend on it, not the other way)",
        ],
        ["typechain-types", "the domain does not know the contracts' bindings"],
      ],
      [...LIBRARY_CLIENTS, ...IO_MODULES],
    ),
  },
  {
    files: ["workers/src/domain/*/**/*.ts"],
    rules: restrict(
      [
        ["^\\.\\./\\.\\./(?!errors$)", "domain imports only the domain and errors.ts"],
        ["typechain-types", "the domain does not know the contracts' bindings"],
      ],
      [...LIBRARY_CLIENTS, ...IO_MODULES],
    ),
  },
  {
    files: ["workers/src/ports/**/*.ts", "workers/src/lib/**/*.ts"],
    rules: restrict([
      ["^\\.\\./(?!domain/|errors$)", "ports and lib import only the domain and ../errors"],
      ["typechain-types", "ports and lib do not know the contracts' bindings"],
    ]),
  },
  {
    files: ["workers/src/adapters/**/*.ts"],
    rules: restrict([
      [
        "^\\.\\./(?!domain/|ports/|lib/|errors$|\\.\\./\\.\\./typechain-types$)",
        "adapters import the domain, ports, lib and errors, never a service or main (declare the type in a port)",
      ],
    ]),
  },
  {
    files: ["workers/src/*.ts"],
    // hollow.ts is wiring too: many devices' main over the in-memory adapters.
    ignores: ["workers/src/main.ts", "workers/src/hollow.ts", "workers/src/index.ts"],
    rules: restrict([
      ["^\\./adapters/", "services depend on ports, not adapters: main wires the adapters in"],
      ["^\\./main$", "nothing imports main (wiring only)"],
    ]),
  },
  {
    files: ["tasks/**/*.ts", "scripts/**/*.ts", "bench/**/*.ts", "test/**/*.ts", "hardhat.config.ts"],
    rules: restrict([["workers/src/.+", PUBLIC_ENTRY]]),
  },
);
