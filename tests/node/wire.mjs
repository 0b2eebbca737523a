// What the three scripts share, written from docs/wire-formats.md alone: exact JSON reading,
// canonical JSON (section 1), Ed25519 keys from raw bytes, SHA-256 and Keccak-256.
// Node's built-in modules only.

import { createHash, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { readFileSync } from "node:fs";

// -- reading JSON exactly -------------------------------------------------------------------------
// JSON.parse turns every number into a double, and integers past 2**53 (a nonce, a chain id) come
// back changed. This reader keeps an integer as a Number while it is exact, else as a BigInt, and
// keeps a number with a fraction or an exponent as a Fraction (canonical JSON refuses those).

export class Fraction {
  constructor(text) {
    this.text = text;
  }
}

export function parseExact(text) {
  let i = 0;
  const fail = (what) => {
    throw new Error(`not JSON: ${what} at offset ${i}`);
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj = {};
      ws();
      if (text[i] === "}") {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("a key");
        const key = string();
        ws();
        if (text[i] !== ":") fail("':'");
        i++;
        // defineProperty: a member named "__proto__" is a member, not the object's prototype.
        Object.defineProperty(obj, key, { value: value(), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return obj;
        }
        fail("',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const arr = [];
      ws();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return arr;
        }
        fail("',' or ']'");
      }
    }
    if (c === '"') return string();
    if (text.startsWith("true", i)) {
      i += 4;
      return true;
    }
    if (text.startsWith("false", i)) {
      i += 5;
      return false;
    }
    if (text.startsWith("null", i)) {
      i += 4;
      return null;
    }
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m) fail("a value");
    i += m[0].length;
    if (m[2] || m[3]) return new Fraction(m[0]);
    const n = BigInt(m[0]);
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  };
  const string = () => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    if (i >= text.length) fail("an unterminated string");
    i++;
    return JSON.parse(text.slice(start, i)); // the escapes, decoded by the engine
  };
  const out = value();
  ws();
  if (i !== text.length) fail("trailing characters");
  return out;
}

// -- canonical JSON (docs/wire-formats.md, section 1) -----------------------------------------------

function escapeString(s) {
  let out = '"';
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(k + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) throw new Error("a string holds a lone surrogate: not valid Unicode");
      out += s[k] + s[k + 1];
      k++;
      continue;
    }
    if (c >= 0xdc00 && c <= 0xdfff) throw new Error("a string holds a lone surrogate: not valid Unicode");
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += "\\\\";
    else if (c === 0x08) out += "\\b";
    else if (c === 0x09) out += "\\t";
    else if (c === 0x0a) out += "\\n";
    else if (c === 0x0c) out += "\\f";
    else if (c === 0x0d) out += "\\r";
    else if (c < 0x20) out += "\\u" + c.toString(16).padStart(4, "0");
    else out += s[k];
  }
  return out + '"';
}

// Keys in Unicode code point order, which is the order of their UTF-8 bytes (not JavaScript's
// default sort, which compares UTF-16 code units).
export const byCodePoint = (a, b) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

// options.sort: false keeps members in the order they are held; options.compare replaces the
// key order; options.asciiOnly escapes every non-ASCII character. Each of these breaks a rule of
// the page: the tests use them to show the rule matters.
export function canonical(value, options = {}) {
  const sortKeys = options.sort !== false;
  const compare = options.compare || byCodePoint;
  const str = options.asciiOnly
    ? (s) => escapeString(s).replace(/[^\x00-\x7f]/g, (ch) => "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0"))
    : escapeString;
  const write = (v) => {
    if (v === null) return "null";
    if (v === true) return "true";
    if (v === false) return "false";
    if (typeof v === "bigint") return v.toString();
    if (typeof v === "number") {
      if (!Number.isInteger(v)) throw new Error(`${v}: canonical JSON holds integers only`);
      return Object.is(v, -0) ? "0" : String(v);
    }
    if (v instanceof Fraction) throw new Error(`${v.text}: canonical JSON holds integers only, no fractions`);
    if (typeof v === "string") return str(v);
    if (Array.isArray(v)) return "[" + v.map(write).join(",") + "]";
    if (typeof v === "object") {
      const keys = Object.keys(v);
      if (sortKeys) keys.sort(compare);
      return "{" + keys.map((k) => str(k) + ":" + write(v[k])).join(",") + "}";
    }
    throw new Error(`cannot write ${typeof v} as JSON`);
  };
  return Buffer.from(write(value), "utf8");
}

// -- hashes and keys --------------------------------------------------------------------------------

export const sha256 = (bytes) => createHash("sha256").update(bytes).digest();

const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex"); // then the 32-byte seed
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex"); // then the 32-byte public key

export function hexBytes(text, length, what) {
  const body = String(text).replace(/^0x/, "");
  if (!/^([0-9a-fA-F]{2})*$/.test(body) || (length !== undefined && body.length !== 2 * length)) {
    const expected = length === undefined ? "hex" : `${length} bytes of hex`;
    throw new Error(`${what}: expected ${expected}, got ${String(text).slice(0, 80)}`);
  }
  return Buffer.from(body, "hex");
}

export function privateKeyFromSeed(seedHex) {
  const der = Buffer.concat([PKCS8_ED25519, hexBytes(seedHex, 32, "seed")]);
  return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
}

export function rawPublicKey(privateKey) {
  return createPublicKey(privateKey).export({ format: "der", type: "spki" }).subarray(-32);
}

export function ed25519Sign(privateKey, message) {
  return sign(null, message, privateKey);
}

export function ed25519Verify(publicHex, signatureHex, message) {
  let publicKey, signature;
  try {
    const der = Buffer.concat([SPKI_ED25519, hexBytes(publicHex, 32, "public key")]);
    publicKey = createPublicKey({ key: der, format: "der", type: "spki" });
    signature = hexBytes(signatureHex, 64, "signature");
  } catch {
    return false;
  }
  return verify(null, message, publicKey, signature);
}

// Keccak-256 as Ethereum uses it: Keccak-f[1600], rate 136 bytes, padding 0x01 ... 0x80 (NIST
// SHA3-256, which node:crypto offers as "sha3-256", pads with 0x06 and gives other hashes).
const MASK = (1n << 64n) - 1n;
const RC = [
  0x0000000000000001n, 0x0000000000008082n, 0x800000000000808an, 0x8000000080008000n, 0x000000000000808bn,
  0x0000000080000001n, 0x8000000080008081n, 0x8000000000008009n, 0x000000000000008an, 0x0000000000000088n,
  0x0000000080008009n, 0x000000008000000an, 0x000000008000808bn, 0x800000000000008bn, 0x8000000000008089n,
  0x8000000000008003n, 0x8000000000008002n, 0x8000000000000080n, 0x000000000000800an, 0x800000008000000an,
  0x8000000080008081n, 0x8000000000008080n, 0x0000000080000001n, 0x8000000080008008n,
];
const ROT = [ // ROT[x][y]
  [0, 36, 3, 41, 18],
  [1, 44, 10, 45, 2],
  [62, 6, 43, 15, 61],
  [28, 55, 25, 21, 56],
  [27, 20, 39, 8, 14],
];
const rotl = (v, n) => (n === 0n ? v : ((v << n) | (v >> (64n - n))) & MASK);

function keccakF(s) {
  for (let round = 0; round < 24; round++) {
    const C = [0, 1, 2, 3, 4].map((x) => s[x] ^ s[x + 5] ^ s[x + 10] ^ s[x + 15] ^ s[x + 20]);
    const D = [0, 1, 2, 3, 4].map((x) => C[(x + 4) % 5] ^ rotl(C[(x + 1) % 5], 1n));
    for (let k = 0; k < 25; k++) s[k] ^= D[k % 5];
    const B = new Array(25);
    for (let x = 0; x < 5; x++) {
      for (let y = 0; y < 5; y++) B[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(s[x + 5 * y], BigInt(ROT[x][y]));
    }
    for (let x = 0; x < 5; x++) {
      for (let y = 0; y < 5; y++) {
        s[x + 5 * y] = B[x + 5 * y] ^ (~B[((x + 1) % 5) + 5 * y] & MASK & B[((x + 2) % 5) + 5 * y]);
      }
    }
    s[0] ^= RC[round];
  }
}

export function keccak256(bytes) {
  const rate = 136;
  const padded = Buffer.alloc((Math.floor(bytes.length / rate) + 1) * rate);
  Buffer.from(bytes).copy(padded);
  padded[bytes.length] ^= 0x01;
  padded[padded.length - 1] ^= 0x80;
  const s = new Array(25).fill(0n);
  for (let off = 0; off < padded.length; off += rate) {
    for (let k = 0; k < rate / 8; k++) s[k] ^= padded.readBigUInt64LE(off + 8 * k);
    keccakF(s);
  }
  const out = Buffer.alloc(32);
  for (let k = 0; k < 4; k++) out.writeBigUInt64LE(s[k], 8 * k);
  return out;
}

// -- running --------------------------------------------------------------------------------------

// Each script reads one case (a JSON object) or a list of them on standard input and writes one
// JSON line per case.
export function runCases(handle) {
  const input = parseExact(readFileSync(0, "utf8"));
  const cases = Array.isArray(input) ? input : [input];
  const lines = cases.map((c) => {
    try {
      return canonical(handle(c)).toString("utf8");
    } catch (err) {
      return canonical({ error: String(err && err.message ? err.message : err) }).toString("utf8");
    }
  });
  process.stdout.write(lines.join("\n") + "\n");
}
