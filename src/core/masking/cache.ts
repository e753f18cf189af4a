import type { ConnectionConfig } from "../policy/schema.js";
import { Masker } from "./masker.js";

/**
 * One compiled Masker per connection config, shared by that connection's sessions (compiling column rules and
 * detectors per session would cost every login). Keyed by the config object, so a reloaded config compiles anew.
 */
export class MaskerCache {
  readonly #byConnection = new WeakMap<ConnectionConfig, Masker>();

  /** The connection's masker, or undefined when it masks nothing. */
  for(connection: ConnectionConfig): Masker | undefined {
    let masker = this.#byConnection.get(connection);
    if (!masker) {
      masker = Masker.from(connection.masking);
      this.#byConnection.set(connection, masker);
    }
    return masker.enabled ? masker : undefined;
  }
}
