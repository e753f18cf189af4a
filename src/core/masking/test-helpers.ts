/** Generators of valid secrets for tests (Luhn check digit, IBAN check digits). */

export function luhnCheckDigit(body: string): string {
  let sum = 0;
  let double = true; // the check digit will take the rightmost place
  for (let i = body.length - 1; i >= 0; i--) {
    let d = body.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return String((10 - (sum % 10)) % 10);
}

export function withLuhn(body: string): string {
  return body + luhnCheckDigit(body);
}

function mod97(numeric: string): number {
  let r = 0;
  for (const ch of numeric) r = (r * 10 + ch.charCodeAt(0) - 48) % 97;
  return r;
}

function toDigits(s: string): string {
  return s.replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
}

/** Builds a valid IBAN from a country code and an (uppercase) BBAN. */
export function makeIban(country: string, bban: string): string {
  const check = 98 - mod97(toDigits(bban + country + "00"));
  return country + String(check).padStart(2, "0") + bban;
}

export function groupsOf4(s: string): string {
  return s.replace(/(.{4})(?=.)/g, "$1 ");
}

export function b64url(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}
