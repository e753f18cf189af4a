import { Option, type Command } from "commander";
import { existsSync } from "node:fs";
import YAML from "yaml";
import {
  AuthError,
  GatewayTokenIssuer,
  IdentityConfigError,
  IdentityVerifier,
  gatewayTokenKeyPath,
  generateStaticToken,
  sha256Hex,
  type Identity,
} from "../core/identity/index.js";
import { loadOrCreateEd25519Key } from "../core/keys.js";
import { parseDuration } from "../core/policy/duration.js";
import { CliError } from "./cli-error.js";
import { DEFAULT_CONFIG_PATH, loadCliConfig } from "./load-config.js";
import { registerSshCertCommand } from "./ssh-cert-command.js";

/** Same rule as `identity.tokens[].name` in the config schema, so a printed snippet always validates. */
const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]*$/;
const MAX_STDIN_BYTES = 64 * 1024;

export function registerTokenCommands(program: Command): void {
  const token = program
    .command("token")
    .description("create static API tokens, mint short-lived gateway tokens, check a bearer token");

  token
    .command("new")
    .description("generate a static API token; prints it once with the config snippet that stores only its hash")
    .requiredOption("--name <name>", "token name (becomes the identity's subject)")
    .option("--groups <list>", "comma-separated groups", "")
    .addOption(kindOption())
    .option("--json", "machine-readable output")
    .action((opts: { name: string; groups: string; kind: "bot" | "human"; json?: boolean }) => {
      if (!TOKEN_NAME.test(opts.name)) {
        throw new CliError(`invalid --name ${JSON.stringify(opts.name)} (letters, digits, '.', '_', '@', '-')`);
      }
      const groups = parseGroupList(opts.groups);
      const { token: secret, sha256 } = generateStaticToken();
      const entry = { name: opts.name, sha256, groups, kind: opts.kind };
      if (opts.json) {
        write(JSON.stringify({ token: secret, ...entry }, null, 2));
        return;
      }
      const snippet = YAML.stringify([entry], { flowCollectionPadding: false }).trimEnd().replace(/^/gm, "    ");
      write(
        [
          "Token (shown once; the gateway stores only its hash):",
          "",
          `  ${secret}`,
          "",
          "Add to gatehouse.yaml:",
          "",
          "identity:",
          "  tokens:",
          snippet,
        ].join("\n"),
      );
    });

  token
    .command("hash")
    .description("read a token on stdin and print its SHA-256 (the value for identity.tokens[].sha256)")
    .action(async () => {
      write(sha256Hex(await readTokenFromStdin()));
    });

  token
    .command("mint")
    .description("mint a short-lived token signed by this gateway's key (development and demos)")
    .requiredOption("--data <dir>", "the gateway's data directory (holds keys/token-signing.pem)")
    .requiredOption("--subject <subject>", "who the token identifies")
    .option("--groups <list>", "comma-separated groups", "")
    .addOption(kindOption())
    .option("--ttl <duration>", "lifetime, at most 24h", "1h")
    .option("--json", "machine-readable output")
    .action(
      async (opts: {
        data: string;
        subject: string;
        groups: string;
        kind: "bot" | "human";
        ttl: string;
        json?: boolean;
      }) => {
        const ttlMs = parseDuration(opts.ttl);
        if (typeof ttlMs !== "number") throw new CliError(`--ttl: ${ttlMs.error}`);
        if (!opts.subject.trim()) throw new CliError("--subject must not be empty");
        const issuer = GatewayTokenIssuer.fromDataDir(opts.data);
        const groups = parseGroupList(opts.groups);
        let minted;
        try {
          minted = await issuer.mint({ subject: opts.subject, groups, kind: opts.kind, ttlMs });
        } catch (err) {
          if (err instanceof RangeError || err instanceof TypeError) throw new CliError(err.message);
          throw err;
        }
        if (opts.json) {
          write(
            JSON.stringify(
              {
                token: minted.token,
                subject: opts.subject,
                kind: opts.kind,
                groups,
                token_id: minted.jti,
                expires_at: minted.expiresAt.toISOString(),
              },
              null,
              2,
            ),
          );
        } else {
          write(minted.token);
        }
      },
    );

  registerSshCertCommand(token);

  token
    .command("verify")
    .description("read a bearer token on stdin and show the identity the gateway would see, or why it refuses it")
    .option("-c, --config <file>", "configuration file (env GATEHOUSE_CONFIG)", DEFAULT_CONFIG_PATH)
    .action(async (opts: { config: string }) => {
      const config = await loadCliConfig(opts.config);
      // only a key that already exists: verifying must not create a signing key as a side effect
      const keyPath = gatewayTokenKeyPath(config.data);
      const gatewayIssuer = existsSync(keyPath) ? { publicKey: loadOrCreateEd25519Key(keyPath).publicKey } : undefined;
      let verifier: IdentityVerifier;
      try {
        verifier = new IdentityVerifier(config.identity, gatewayIssuer ? { gatewayIssuer } : {});
      } catch (err) {
        if (err instanceof IdentityConfigError) throw new CliError(`${opts.config}: ${err.message}`);
        throw err;
      }
      const bearer = await readTokenFromStdin();
      try {
        write(JSON.stringify(identityJson(await verifier.verify(bearer)), null, 2));
      } catch (err) {
        if (err instanceof AuthError) throw new CliError(`token refused (${err.code}): ${err.message}`);
        throw err;
      }
    });
}

function kindOption(): Option {
  return new Option("--kind <kind>", "identity kind").choices(["bot", "human"]).default("bot");
}

function parseGroupList(list: string): string[] {
  const groups = [
    ...new Set(
      list
        .split(",")
        .map((g) => g.trim())
        .filter(Boolean),
    ),
  ];
  const prefixed = groups.find((g) => g.startsWith("group:"));
  if (prefixed) throw new CliError(`--groups: write ${prefixed.slice(6)} without the "group:" prefix`);
  return groups;
}

/** The evidence format's spelling (snake_case), so operators see what audit events will say. */
function identityJson(identity: Identity): Record<string, unknown> {
  return {
    subject: identity.subject,
    kind: identity.kind,
    groups: identity.groups,
    issuer: identity.issuer,
    token_id: identity.tokenId,
    ...(identity.expiresAt ? { expires_at: identity.expiresAt.toISOString() } : {}),
  };
}

/** One token from stdin; a single trailing newline (from echo or a file) is not part of it. */
async function readTokenFromStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write("paste the token, then press Ctrl-D\n");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buf = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > MAX_STDIN_BYTES) throw new CliError("token on stdin is too large");
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
  if (!text) throw new CliError("no token on stdin");
  return text;
}

function write(text: string): void {
  process.stdout.write(text + "\n");
}
