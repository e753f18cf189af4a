/**
 * The entry point the bench's proxy programs share: run as `node --import tsx bench/<proxy>.ts HOST PORT`, start the
 * proxy, print {"port"} on stdout, and exit when told (SIGTERM, SIGINT, or the parent closing stdin).
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

export async function runAsProxyProcess(
  moduleUrl: string,
  start: (host: string, port: number) => Promise<{ port: number; close(): Promise<void> }>,
): Promise<void> {
  const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(moduleUrl);
  if (!isMain) return;
  const [host, port] = process.argv.slice(2);
  if (!host || !port) {
    process.stderr.write(`usage: node --import tsx ${fileURLToPath(moduleUrl)} TARGET_HOST TARGET_PORT\n`);
    process.exit(2);
  }
  const proxy = await start(host, Number(port));
  const stop = () => void proxy.close().finally(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
  process.stdout.write(JSON.stringify({ port: proxy.port }) + "\n");
}
