// A producer written from docs/wire-formats.md, section 2 (and section 1's canonical JSON) alone.
//
// Input on standard input: one case, or a JSON array of cases:
//   {"seed": "<32-byte Ed25519 seed, hex>", "intent": {the fields the producer sends}, "break": optional}
// Output: one JSON line per case:
//   {"intent": {the record to send, with "signature"}, "signing_bytes": "<text>", "digest": "<hex>",
//    "public_key": "0x<hex>"}            or {"error": "..."}
// "break" names one rule of the page to get wrong, so a test can show that the rule matters:
//   keep_defaults      keep the fields that are omitted at default
//   omit_all_defaults  leave out every field at its default (null, false, [] ...)
//   no_schema_version  leave out schema_version
//   no_normalize       sign the values as sent
//   unsorted           keys in the table's order, not sorted
//   utf16_sort         keys sorted by UTF-16 code units (JavaScript's default sort)
//   ascii_escape       non-ASCII characters written as \u escapes
// A case {"describe": true} prints the field table this producer was written with.

import { canonical, ed25519Sign, keccak256, privateKeyFromSeed, rawPublicKey, runCases, sha256 } from "./wire.mjs";

const OMIT = "omitted at default";
const ALWAYS = "always";
const REQUIRED = Symbol("required");

// The table of section 2: field -> [kind, default, in the signing bytes].
const FIELDS = {
  schema_version: ["integer", 1, ALWAYS],
  intent_id: ["identifier", REQUIRED, ALWAYS],
  agent_id: ["identifier", REQUIRED, ALWAYS],
  idempotency_key: ["string", null, ALWAYS],
  intent_type: ["string", "transaction", OMIT],
  chain: ["string", REQUIRED, ALWAYS],
  to: ["address", null, ALWAYS],
  value: ["native", null, ALWAYS],
  data: ["hex", "0x", ALWAYS],
  tx_type: ["integer", 2, ALWAYS],
  gas_limit: ["integer", null, ALWAYS],
  gas_price: ["wei", null, ALWAYS],
  max_fee_per_gas: ["wei", null, ALWAYS],
  max_priority_fee_per_gas: ["wei", null, ALWAYS],
  access_list: ["access_list", [], ALWAYS],
  nonce: ["integer", null, ALWAYS],
  max_fee_per_blob_gas: ["wei", null, OMIT],
  blob_versioned_hashes: ["hex[]", [], OMIT],
  blobs: ["hex[]", [], OMIT],
  authorization_list: ["authorizations", [], OMIT],
  declared_outflows: ["outflows", [], OMIT],
  message: ["hex", null, OMIT],
  typed_data: ["typed_data", null, OMIT],
  solana_transaction: ["string", null, OMIT],
  solana_message: ["string", null, OMIT],
  bitcoin_psbt: ["string", null, OMIT],
  signing_key_path: ["string", null, ALWAYS],
  simulate_first: ["boolean", false, ALWAYS],
  broadcast: ["boolean", false, ALWAYS],
  sealed_client_share: ["sealed[]", [], ALWAYS],
  sealed_cmek: ["sealed[]", [], ALWAYS],
  unattested_signer_accepted: ["boolean", false, OMIT],
  created_at: ["timestamp", REQUIRED, ALWAYS],
  expires_at: ["timestamp", null, ALWAYS],
};

// -- normalizing each kind ------------------------------------------------------------------------

const MAX_UINT256 = (1n << 256n) - 1n;

function address(v, path) {
  if (typeof v !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(v)) {
    throw new Error(`${path}: not a 0x + 40 hex digit address`);
  }
  const body = v.slice(2);
  const lower = body.toLowerCase();
  const hash = keccak256(Buffer.from(lower, "ascii"));
  let out = "";
  for (let i = 0; i < 40; i++) {
    const nibble = (hash[i >> 1] >> (i % 2 === 0 ? 4 : 0)) & 0xf;
    out += /[a-f]/.test(lower[i]) && nibble >= 8 ? lower[i].toUpperCase() : lower[i];
  }
  if (body !== lower && body !== body.toUpperCase() && body !== out) throw new Error(`${path}: bad EIP-55 checksum`);
  return "0x" + out;
}

function hex(v, path) {
  if (typeof v !== "string" || !/^0x([0-9a-fA-F]{2})*$/.test(v)) {
    throw new Error(`${path}: not 0x-prefixed hex of whole bytes`);
  }
  return v.toLowerCase();
}

function native(v, path) {
  if (typeof v !== "string") throw new Error(`${path}: a native amount is a JSON string`);
  const m = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/.exec(v);
  if (!m) throw new Error(`${path}: not a plain decimal`);
  const frac = m[2] || "";
  if (frac.length > 18) throw new Error(`${path}: more than 18 decimals`);
  const units = BigInt(m[1]) * 10n ** 18n + BigInt(frac.padEnd(18, "0") || "0");
  if (units > MAX_UINT256) throw new Error(`${path}: more than 2**256-1 wei`);
  const trimmed = frac.replace(/0+$/, "");
  return trimmed ? `${m[1]}.${trimmed}` : m[1];
}

function wei(v, path) {
  let n;
  if (typeof v === "number" && Number.isInteger(v)) n = BigInt(v);
  else if (typeof v === "bigint") n = v;
  else if (typeof v === "string" && /^[0-9]+$/.test(v)) n = BigInt(v);
  else throw new Error(`${path}: wei is an integer or a string of digits`);
  if (n < 0n || n > MAX_UINT256) throw new Error(`${path}: out of range`);
  return n.toString();
}

function integer(v, path) {
  if ((typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint") return v;
  throw new Error(`${path}: not a JSON integer`);
}

function timestamp(v, path) {
  const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;
  const m = typeof v === "string" && RFC3339.exec(v);
  if (!m) throw new Error(`${path}: not an RFC 3339 date-time with Z or an offset`);
  const [, Y, Mo, D, h, mi, s, frac, z, sign, oh, om] = m;
  let ms = Date.UTC(+Y, +Mo - 1, +D, +h, +mi, +s);
  if (!z) ms -= (sign === "+" ? 1 : -1) * (+oh * 60 + +om) * 60000;
  const iso = new Date(ms).toISOString().slice(0, 19); // YYYY-MM-DDTHH:MM:SS, UTC
  const micro = (frac || "").slice(0, 6).padEnd(6, "0"); // past the sixth digit: cut
  return micro === "000000" ? `${iso}Z` : `${iso}.${micro}Z`;
}

const nullable = (f) => (v, path) => (v === null ? null : f(v, path));
const arrayOf = (f) => (v, path) => {
  if (!Array.isArray(v)) throw new Error(`${path}: not an array`);
  return v.map((item, i) => f(item, `${path}[${i}]`));
};
const record = (members) => (v, path) => {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error(`${path}: not an object`);
  for (const k of Object.keys(v)) if (!(k in members)) throw new Error(`${path}.${k}: unknown member`);
  const out = {};
  for (const [k, [f, dflt]] of Object.entries(members)) {
    if (!(k in v) && dflt === REQUIRED) throw new Error(`${path}.${k}: required`);
    out[k] = k in v ? f(v[k], `${path}.${k}`) : dflt;
  }
  return out;
};
const asSent = (v) => v;

const typedFields = arrayOf(record({ name: [asSent, REQUIRED], type: [asSent, REQUIRED] }));

const KINDS = {
  identifier: asSent,
  string: asSent,
  boolean: asSent,
  integer: nullable(integer),
  address: nullable(address),
  hex: nullable(hex),
  native: nullable(native),
  wei: nullable(wei),
  timestamp: nullable(timestamp),
  "hex[]": arrayOf(hex),
  access_list: arrayOf(record({ address: [address, REQUIRED], storage_keys: [arrayOf(hex), []] })),
  authorizations: arrayOf(record({
    address: [address, REQUIRED], chain_id: [integer, REQUIRED], nonce: [nullable(integer), null],
  })),
  outflows: arrayOf(record({ amount: [wei, REQUIRED], token: [address, REQUIRED] })),
  "sealed[]": arrayOf(record({ key_id: [asSent, REQUIRED], sealed: [asSent, REQUIRED] })),
  // domain and message as sent; the field lists keep only name and type.
  typed_data: nullable(record({
    domain: [asSent, REQUIRED],
    message: [asSent, REQUIRED],
    primaryType: [asSent, REQUIRED],
    types: [(t, path) => Object.fromEntries(Object.entries(t).map(([name, fields]) =>
      [name, typedFields(fields, `${path}.${name}`)])), REQUIRED],
  })),
};

const equal = (a, b) => canonical(a).equals(canonical(b));

// -- the signing bytes ----------------------------------------------------------------------------

function signingRecord(sent, brk) {
  for (const k of Object.keys(sent)) {
    if (!(k in FIELDS) && k !== "signature") throw new Error(`${k}: not a field of an intent`);
  }
  const out = {};
  for (const [name, [kind, dflt, presence]] of Object.entries(FIELDS)) {
    if (!(name in sent)) {
      if (dflt === REQUIRED) throw new Error(`${name}: required`);
    }
    const given = name in sent ? sent[name] : dflt;
    const value = brk === "no_normalize" ? given : KINDS[kind](given, name);
    const atDefault = dflt !== REQUIRED && equal(value, dflt);
    if (presence === OMIT && atDefault && brk !== "keep_defaults") continue;
    if (brk === "omit_all_defaults" && atDefault) continue;
    if (brk === "no_schema_version" && name === "schema_version") continue;
    out[name] = value;
  }
  return out;
}

function signingBytes(rec, brk) {
  if (brk === "unsorted") return canonical(rec, { sort: false });
  if (brk === "utf16_sort") return canonical(rec, { compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0) });
  if (brk === "ascii_escape") return canonical(rec, { asciiOnly: true });
  return canonical(rec);
}

runCases((c) => {
  if (c.describe) {
    return { fields: Object.fromEntries(Object.entries(FIELDS).map(([name, [kind, dflt, presence]]) =>
      [name, { kind, default: dflt === REQUIRED ? "required" : dflt, omitted_at_default: presence === OMIT }])) };
  }
  const key = privateKeyFromSeed(c.seed);
  const rec = signingRecord(c.intent, c.break);
  const bytes = signingBytes(rec, c.break);
  const signature = ed25519Sign(key, bytes).toString("hex");
  return {
    intent: { ...rec, signature },
    signing_bytes: bytes.toString("utf8"),
    digest: sha256(bytes).toString("hex"),
    public_key: "0x" + rawPublicKey(key).toString("hex"),
  };
});

