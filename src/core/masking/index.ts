export { Masker, COLUMN_MASK, type ColumnRef, type DetectorHit } from "./masker.js";
export { EMAIL_MASK } from "./detectors/email.js";
export { MaskerCache } from "./cache.js";
export { HeldSecrets, HELD_SECRET_MASK } from "./held-secrets.js";
