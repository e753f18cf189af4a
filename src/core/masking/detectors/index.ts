import type { MaskingDetector } from "../../policy/vocabulary.js";
import { awsKey } from "./aws-key.js";
import { creditCard } from "./credit-card.js";
import { email } from "./email.js";
import { iban } from "./iban.js";
import { jwt } from "./jwt.js";
import { privateKey } from "./private-key.js";
import type { Detector } from "./types.js";

/**
 * Every detector, in precedence order: when two hits start at the same place and are equally long, the earlier
 * one here wins. Widest secrets first, so a key block is never half-masked as something smaller.
 */
export const DETECTORS: readonly Detector[] = [privateKey, jwt, awsKey, iban, creditCard, email];

export const DETECTOR_RANK: ReadonlyMap<MaskingDetector, number> = new Map(DETECTORS.map((d, i) => [d.name, i]));

export type { Detector, Span } from "./types.js";
