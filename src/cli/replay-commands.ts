import { Option, type Command } from "commander";
import { readRecording } from "../core/evidence/recorder.js";
import { renderAsciicast, renderJson, renderText } from "../core/evidence/replay.js";
import { CliError } from "./cli-error.js";
import { DEFAULT_DATA_DIR, withEvidenceReader } from "./read-store.js";

const RENDERERS = { text: renderText, json: renderJson, asciicast: renderAsciicast } as const;

export function registerReplayCommands(program: Command): void {
  program
    .command("replay")
    .description("print a recorded session: a query/result timeline (text), the raw events (json), or asciicast v2")
    .argument("<session-id>", "the session id (as in the audit log's session_id)")
    .option("-d, --data <dir>", "data directory holding gatehouse.db (env GATEHOUSE_DATA)", DEFAULT_DATA_DIR)
    .addOption(new Option("--format <format>", "output format").choices(Object.keys(RENDERERS)).default("text"))
    .action(async (sessionId: string, opts: { data: string; format: keyof typeof RENDERERS }) => {
      const output = await withEvidenceReader(opts.data, async (store) => {
        const session = await store.getSession(sessionId);
        if (!session) throw new CliError(`no recorded session ${sessionId} in ${opts.data}`);
        return RENDERERS[opts.format](session, readRecording(store, sessionId));
      });
      process.stdout.write(output);
    });
}
