import { readCString } from "./wire.js";

/**
 * How the target will split SQL text into tokens, as far as that can differ from the gateway's parser, which always
 * reads text with standard_conforming_strings=on as UTF-8. Two server settings change it:
 *
 * - standard_conforming_strings=off makes a backslash an escape inside plain '...' literals, so
 *   `SELECT '\''; DROP TABLE t; --'` is one string to the gateway and a DROP to the server. Text without a
 *   backslash reads the same either way.
 * - a client_encoding other than UTF-8 makes the server convert the bytes first; in multi-byte encodings
 *   (SJIS, BIG5, GBK...) a backslash byte can be the second half of a character. Plain ASCII reads the same in
 *   every client encoding PostgreSQL accepts.
 *
 * A `SET` of either is refused by the analyzer itself (core/inspect/postgres-sql/guards.ts), but `set_config()`, a
 * function, a role or database default, or a transaction rollback change them where no SQL text says so. The
 * server reports both (GUC_REPORT) in ParameterStatus, before ReadyForQuery: that is what this class follows.
 */
export class TargetLexerState {
  #conformingStrings = true;
  #clientEncoding = "UTF8";
  #serverEncoding = "UTF8";

  /** A ParameterStatus from the target (at login, and whenever a reported setting changes). */
  observe(name: string, value: string): void {
    if (name === "standard_conforming_strings") this.#conformingStrings = value.toLowerCase() === "on";
    else if (name === "client_encoding") this.#clientEncoding = value;
    else if (name === "server_encoding") this.#serverEncoding = value;
  }

  /**
   * Why the gateway cannot analyze `text` the way the target will read it in the current state, or undefined when
   * it can. Only text that `dependsOnState` needs this.
   */
  doubt(text: string): string | undefined {
    if (!this.#readsUtf8() && NON_ASCII.test(text)) {
      return `the target reads text as ${this.#clientEncoding}, not UTF-8, and this text is not plain ASCII`;
    }
    if (!this.#conformingStrings && text.includes("\\")) {
      return "standard_conforming_strings is off on the target, and this text contains a backslash";
    }
    return undefined;
  }

  /** SQL_ASCII input is not converted, only checked against the server encoding: UTF-8 if the server's is. */
  #readsUtf8(): boolean {
    const client = normalizeEncoding(this.#clientEncoding);
    return client === "utf8" || (client === "sqlascii" && normalizeEncoding(this.#serverEncoding) === "utf8");
  }
}

const NON_ASCII = /[\u0080-\uffff]/;
const STATE_DEPENDENT = /[\\\u0080-\uffff]/;

/** Whether how the target reads `text` can depend on its settings at all (a backslash, or anything but ASCII). */
export function dependsOnState(text: string): boolean {
  return STATE_DEPENDENT.test(text);
}

function normalizeEncoding(name: string): string {
  const n = name.toLowerCase().replace(/[^a-z0-9]/g, "");
  return n === "unicode" ? "utf8" : n;
}

/** Name and value of a ParameterStatus message body ('S'): two C strings; undefined if one is unterminated. */
export function readParameterStatus(body: Buffer): { name: string; value: string } | undefined {
  const [name, afterName] = readCString(body, 0);
  if (afterName < 0) return undefined;
  const [value, end] = readCString(body, afterName);
  return end < 0 ? undefined : { name, value };
}
