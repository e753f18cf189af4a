/**
 * Interactive terminal streams, for any protocol that carries one (SSH sessions, Kubernetes exec): the lines a user
 * types, admitted one by one before their Enter reaches the target, and the output they are shown, masked at line
 * boundaries and teed into the session's recording.
 */
export { MAX_HELD_LINE_BYTES, OutputMasker, PARTIAL_LINE_FLUSH_MS, RecordingTee } from "./output.js";
export { ShellInput, type LineVerdict, type ShellInputOptions } from "./shell-input.js";
export { readsCommandsFromStdin } from "./stdin-commands.js";
