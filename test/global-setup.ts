/**
 * Global setup of the `e2e` vitest project: installs (when missing) and starts the real PostgreSQL, MariaDB and
 * OpenSSH servers through test/services.sh, then hands their connection facts to the tests via provide/inject
 * (see test/support/services.ts) and process.env (for child processes a test spawns).
 *
 * Set GH_TEST_KEEP_SERVICES=1 to leave the servers running after the run (the next run then starts in ~0.1 s).
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";
import { parseServicesEnv } from "./support/services-env.js";

const script = fileURLToPath(new URL("./services.sh", import.meta.url));

function run(...args: string[]): string {
  // stdout is captured (it carries `env`); stderr goes to the terminal so install/up progress is visible.
  return execFileSync("bash", [script, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
}

export default function setup(project: TestProject): () => void {
  const holder = String(process.pid);
  try {
    run("install");
  } catch (err) {
    throw new Error("test/services.sh install failed (its output above says what to run)", { cause: err });
  }
  run("up", "--holder", holder);
  const env = parseServicesEnv(run("env"));
  project.provide("services", env);
  Object.assign(process.env, env);
  return () => {
    if (process.env.GH_TEST_KEEP_SERVICES === "1") return;
    run("down", "--holder", holder);
  };
}
