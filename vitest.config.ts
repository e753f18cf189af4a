import { configDefaults, defineConfig } from "vitest/config";

// Two projects so that unit tests never pay for (or depend on) real servers:
//   unit: everything except the end-to-end tests; runs anywhere, no root, no servers.
//   e2e:  tests against real PostgreSQL / MariaDB / OpenSSH, started by test/global-setup.ts.
// `npx vitest run --project unit` or a path filter (`npx vitest run src/core/policy`) runs no global setup for e2e.
const e2e = ["test/e2e/**/*.test.ts", "test/services.test.ts"];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: "forks",
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, ...e2e],
        },
      },
      {
        extends: true,
        test: { name: "e2e", include: e2e, globalSetup: ["test/global-setup.ts"] },
      },
    ],
  },
});
