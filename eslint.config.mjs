// @ts-check
import eslint from "@eslint/js";
import tseslint from "typescript-eslint";
import mocha from "eslint-plugin-mocha";

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
);
