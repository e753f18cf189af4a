// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", ".tmp/", "node_modules/", "coverage/", "data/", "web/dist/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-restricted-imports": "off",
    },
  },
  {
    // The core knows no protocol: it must never import an adapter (DESIGN.md section 2).
    files: ["src/core/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/protocols/**", "**/cli/**", "**/api/**"],
              message: "src/core must not import adapters, the CLI or the API",
            },
          ],
        },
      ],
    },
  },
  {
    // An adapter follows the adapter contract (src/core/adapter): it imports the core and nothing else of src/ —
    // not the server that composes it, not the API or CLI, not another adapter (a shared piece moves to the core).
    files: ["src/protocols/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              // anything above the adapter's own folder, except src/core
              regex: "^\\.\\./(?!\\.\\./core(?:/|$))",
              message:
                "an adapter imports only src/core (and its own files): see docs/architecture.md, Adding a protocol",
            },
          ],
        },
      ],
    },
  },
  {
    // A rejected promise nobody handles ends the Node process, and with it every session of every protocol: in
    // src/ every promise is awaited, returned, or given a rejection handler (`void` does not count).
    files: ["src/**/*.ts"],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: { "@typescript-eslint/no-floating-promises": ["error", { ignoreVoid: false }] },
  },
  {
    files: ["bin/**/*.js", "bench/**/*.js", "test/**/*.js"],
    languageOptions: { globals: { process: "readonly", console: "readonly" } },
  },
);
