/**
 * SSH throughput: `cat` of a 100 MiB file on the real OpenSSH test server, read by the real `ssh` client directly
 * and through the gateway (exec channel, recorded; once without masking, once with content detectors).
 *
 *   node --import tsx bench/ssh-throughput.ts [--mb 100]
 *
 * Needs the e2e test servers (`bash test/services.sh up`, as root). One JSON line per case for bench/run.js.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import ssh2 from "ssh2";
import { parseConfig } from "../src/core/policy/loader.js";
import { Gateway } from "../src/server/gateway.js";
import { gatewayYaml, sshConnectionYaml, testSshTarget } from "../test/support/gateway-config.js";
import { parseServicesEnv } from "../test/support/services-env.js";
import { sshClientArgs } from "../test/support/ssh-client.js";

const { values: args } = parseArgs({ options: { mb: { type: "string", default: "100" } } });
const MIB = Number(args.mb);

execFileSync("bash", ["test/services.sh", "up"], { stdio: ["ignore", "ignore", "inherit"] });
const env = parseServicesEnv(execFileSync("bash", ["test/services.sh", "env"], { encoding: "utf8" }));

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
const target = testSshTarget(env);
const yaml = gatewayYaml({
  data: join(dir, "data"),
  sshKeys: [{ name: "bench", key: key.public, groups: ["bench"] }],
  connections: [
    sshConnectionYaml(target, { name: "plain", group: "bench" }),
    sshConnectionYaml(target, {
      name: "masked",
      group: "bench",
      extra: "masking: { detectors: [credit_card, jwt, private_key, aws_key] }",
    }),
  ],
});
const config = parseConfig(yaml, { source: "bench.yaml", baseDir: dir });
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
      ...sshClientArgs(port),
      "-i",
      identity,
      "-o",
      "BatchMode=yes",
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
  const direct = await best(() => cat(env.GH_TEST_SSH_PORT, env.GH_TEST_SSH_USER, env.GH_TEST_SSH_CLIENT_KEY));
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
