// The real `gatehouse` CLI from sources (no build needed): `node --import tsx test/e2e/approvals/cli.ts ARGS`.
import { main } from "../../../src/cli/main.js";

process.exitCode = await main(process.argv);
