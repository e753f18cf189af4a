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
