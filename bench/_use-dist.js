/**
 * Makes a benchmark run the compiled gateway (dist/, what `npm start` and `gatehouse` run) instead of src/ through
 * tsx, whose transform adds helpers (keepNames wrappers) to hot functions. Benchmarks keep importing ../src/*.js
 * for their types; this hook swaps each resolved src/ module for its dist/ twin when the build has one.
 *
 *   node --import tsx --import ./bench/_use-dist.js bench/pgbench.ts      (bench/run.js does this itself)
 */
import { register } from "node:module";

register("./_dist-hooks.js", import.meta.url);
