import { randomBytes } from "node:crypto";

/**
 * Session ids sort by start time (a base36 millisecond prefix) so listings page in order without an extra
 * index, and carry 80 random bits so they cannot be guessed by another client.
 */
export function newSessionId(now: number = Date.now()): string {
  return `s_${now.toString(36).padStart(9, "0")}${randomBytes(10).toString("hex")}`;
}
