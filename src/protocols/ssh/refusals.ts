import type { RefusalAnswers } from "../../core/adapter/index.js";

/** The exit status a channel gets when a command is refused (what a shell reports for "cannot execute"). */
export const EXIT_REFUSED = 126;

/**
 * The exit status each refusal ends a channel with; the reason is written to the channel's stderr. A refused
 * session answers every channel with it (the SSH login itself already succeeded: the bearer token was valid).
 * A refused shell line does not end the channel: the line is cancelled (Ctrl-C) and the reason shown.
 */
export const SSH_REFUSALS: RefusalAnswers<number> = {
  session: { unknown_connection: 1, wrong_protocol: 1, no_access: 1, evidence_unavailable: 1 },
  request: {
    denied: EXIT_REFUSED,
    approval_denied: EXIT_REFUSED,
    approval_expired: EXIT_REFUSED,
    approval_cancelled: EXIT_REFUSED,
    approval_pending: EXIT_REFUSED,
    evidence_unavailable: EXIT_REFUSED,
  },
};
