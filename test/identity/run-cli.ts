// Runs the CLI from source in a child process, so tests exercise real argv, stdin, stdout and exit codes.
import { main } from "../../src/cli/main.js";

process.exitCode = await main(process.argv);
