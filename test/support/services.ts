/**
 * How e2e tests reach the real servers: `const svc = services();` then `svc.GH_TEST_PG_PORT` etc.
 * Only the `e2e` vitest project starts them (test/global-setup.ts); calling this elsewhere throws.
 */
import { inject } from "vitest";
import type { ServicesEnv } from "./services-env.js";

declare module "vitest" {
  export interface ProvidedContext {
    services: ServicesEnv;
  }
}

export type { ServicesEnv, ServiceKey } from "./services-env.js";

export function services(): ServicesEnv {
  const env = inject("services");
  if (!env) throw new Error("real test servers are not up: this test must live in the e2e project (test/e2e/)");
  return env;
}
