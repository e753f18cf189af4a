import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Option, type Command } from "commander";
import { stringify } from "yaml";
import { CliError } from "./cli-error.js";
import { DEFAULT_CONFIG_PATH, loadCliConfig } from "./load-config.js";

interface KubeconfigOptions {
  config: string;
  server?: string;
  token?: string;
  exec?: boolean;
}

export function registerKubeconfigCommands(program: Command): void {
  program
    .command("kubeconfig")
    .description("print a kubeconfig that points kubectl at the gateway's HTTP listener for a Kubernetes connection")
    .argument("<connection>", "the kubernetes connection's name")
    .option("-c, --config <file>", "gateway configuration (env GATEHOUSE_CONFIG)", DEFAULT_CONFIG_PATH)
    .option("--server <url>", "the gateway's address as kubectl reaches it (default: from listen.http)")
    .addOption(new Option("--token <token>", "the bearer token kubectl presents").env("GATEHOUSE_TOKEN"))
    .option(
      "--exec",
      "no token in the file: kubectl runs `gatehouse kubeconfig-credential`, which reads GATEHOUSE_TOKEN",
    )
    .action(async (connection: string, opts: KubeconfigOptions) => {
      process.stdout.write(await kubeconfig(connection, opts));
    });
  program
    .command("kubeconfig-credential", { hidden: true })
    .description("print an ExecCredential with GATEHOUSE_TOKEN (kubectl's credential plugin protocol)")
    .action(() => {
      const token = process.env.GATEHOUSE_TOKEN;
      if (!token) throw new CliError("GATEHOUSE_TOKEN is not set", 1);
      process.stdout.write(
        `${JSON.stringify({ apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential", status: { token } })}\n`,
      );
    });
}

async function kubeconfig(connection: string, opts: KubeconfigOptions): Promise<string> {
  const config = await loadCliConfig(opts.config);
  const conn = config.connections.find((c) => c.name === connection);
  if (!conn) throw new CliError(`no connection named "${connection}" in ${opts.config}`);
  if (conn.type !== "kubernetes")
    throw new CliError(`connection "${connection}" is a ${conn.type} connection, not kubernetes`);
  const listen = config.listen.http;
  if (!listen && !opts.server) throw new CliError(`${opts.config} has no listen.http (or pass --server)`);
  const tls = config.http.tls;
  let server = opts.server;
  if (!server) {
    const at = listen as NonNullable<typeof listen>;
    if (at.host === "0.0.0.0" || at.host === "::")
      throw new CliError("listen.http binds every address: pass --server with the address kubectl should use");
    const host = at.host.includes(":") ? `[${at.host}]` : at.host;
    server = `${tls.enabled ? "https" : "http"}://${host}:${at.port}`;
  }
  const url = `${server.replace(/\/+$/, "")}/${encodeURIComponent(connection)}`;
  const cluster: Record<string, unknown> = { server: url };
  if (url.startsWith("https:")) {
    // the listener's own certificate (configured, or generated into the data directory at its first start)
    const cert = tls.cert ?? readGenerated(join(config.data, "keys", "http-tls.crt"));
    cluster["certificate-authority-data"] = Buffer.from(cert).toString("base64");
  }
  let user: Record<string, unknown>;
  if (opts.exec) {
    user = {
      exec: {
        apiVersion: "client.authentication.k8s.io/v1",
        command: "gatehouse",
        args: ["kubeconfig-credential"],
        interactiveMode: "Never",
      },
    };
  } else {
    if (!opts.token) throw new CliError("a token is required (--token or GATEHOUSE_TOKEN), or use --exec", 2);
    user = { token: opts.token };
  }
  const name = `gatehouse-${connection}`;
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name, cluster }],
    users: [{ name, user }],
    contexts: [{ name, context: { cluster: name, user: name } }],
    "current-context": name,
  });
}

function readGenerated(path: string): string {
  if (!existsSync(path))
    throw new CliError(
      `${path} does not exist yet: start the gateway once (it generates the certificate), or configure http.tls.cert`,
    );
  return readFileSync(path, "utf8");
}
