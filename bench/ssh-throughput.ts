/**
 * SSH throughput: `cat` of a 100 MiB file on the real OpenSSH test server, read by the real `ssh` client directly
 * and through the gateway (exec channel, recorded; once without masking, once with content detectors).
 *
 *   node --import tsx bench/ssh-throughput.ts [--mb 100]
 *
 * Needs the e2e test servers (`bash test/services.sh up`, as root). One JSON line per case for bench/run.js.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import ssh2 from "ssh2";
import { parseConfig } from "../src/core/policy/loader.js";
import { Gateway } from "../src/server/gateway.js";

const { values: args } = parseArgs({ options: { mb: { type: "string", default: "100" } } });
const MIB = Number(args.mb);

execFileSync("bash", ["test/services.sh", "up"], { stdio: ["ignore", "ignore", "inherit"] });
const env = Object.fromEntries(
  execFileSync("bash", ["test/services.sh", "env"], { encoding: "utf8" })
    .trim()
    .split("\n")
    .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
) as Record<string, string>;
const need = (k: string): string => env[k] ?? (process.env[k] as string);

const dir = mkdtempSync(join(tmpdir(), "gatehouse-bench-ssh-"));
// printable text, so the masked case scans realistic terminal output; world-readable for the sshtest user
const file = join(dir, "payload.txt");
execFileSync("bash", [
  "-c",
  `head -c ${MIB * 768 * 1024} /dev/urandom | base64 -w 76 | head -c ${MIB * 1024 * 1024} > ${file}`,
]);
execFileSync("chmod", ["-R", "a+rX", dir]);

const key = ssh2.utils.generateKeyPairSync("ed25519");
const keyPath = join(dir, "bench_ed25519");
writeFileSync(keyPath, key.private, { mode: 0o600 });
const hostKey = readFileSync(need("GH_TEST_SSH_HOST_KEY_PUB"), "utf8").trim();
const target = `{ host: 127.0.0.1, port: ${need("GH_TEST_SSH_PORT")}, user: ${need("GH_TEST_SSH_USER")}, private_key: "\${file:${need("GH_TEST_SSH_CLIENT_KEY")}}", host_key: "${hostKey}" }`;
const config = parseConfig(
  `
data: ${join(dir, "data")}
identity:
  ssh_keys: [{ name: bench, key: "${key.public}", groups: [bench] }]
connections:
  - { name: plain, type: ssh, target: ${target}, access: [group:bench] }
  - { name: masked, type: ssh, target: ${target}, access: [group:bench], masking: { detectors: [credit_card, jwt, private_key, aws_key] } }
`,
  { source: "bench.yaml", baseDir: dir },
);
const gateway = await Gateway.start(config, {
  apiListen: { host: "127.0.0.1", port: 0 },
  listen: { ssh: { host: "127.0.0.1", port: 0 } },
  log: () => undefined,
});
const gwPort = (gateway.address("ssh") ?? "").split(":").pop() as string;

/** Seconds for `ssh ... cat FILE`, counting the bytes that arrive. */
function cat(port: string, user: string, identity: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn("ssh", [
      "-F",
      "/dev/null",
      "-p",
      port,
      "-i",
      identity,
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "LogLevel=ERROR",
      `${user}@127.0.0.1`,
      `cat ${file}`,
    ]);
    let bytes = 0;
    child.stdout.on("data", (d: Buffer) => (bytes += d.length));
    child.on("close", (code) => {
      if (code !== 0 || bytes !== MIB * 1024 * 1024) reject(new Error(`ssh exited ${code} after ${bytes} bytes`));
      else resolve((performance.now() - t0) / 1000);
    });
  });
}

const best = async (f: () => Promise<number>, runs = 2) => {
  let min = Infinity;
  for (let i = 0; i < runs; i++) min = Math.min(min, await f());
  return min;
};
try {
  const direct = await best(() =>
    cat(need("GH_TEST_SSH_PORT"), need("GH_TEST_SSH_USER"), need("GH_TEST_SSH_CLIENT_KEY")),
  );
  for (const conn of ["plain", "masked"]) {
    const through = await best(() => cat(gwPort, conn, keyPath));
    const d = MIB / direct;
    const g = MIB / through;
    console.log(
      JSON.stringify({
        name: `ssh cat ${MIB} MiB (${conn === "plain" ? "recorded" : "recorded + masked"})`,
        direct: Number(d.toFixed(1)),
        gateway: Number(g.toFixed(1)),
        unit: "MiB/s",
        ratio: Number((g / d).toFixed(3)),
      }),
    );
  }
} finally {
  await gateway.stop();
  rmSync(dir, { recursive: true, force: true });
}
