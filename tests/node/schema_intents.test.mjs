// A producer that knows of an intent only what `warden schemas export` writes
// (TransactionIntent.schema.json) and what docs/wire-formats.md says of the bytes (canonical
// JSON, section 1; sign and digest, section 2). It has no table of fields of its own: every
// property the schema lists is written with what the producer gives or else the schema's
// default, except a property marked "x-omit-when-default" that holds its default, which is left
// out. Records nested in the intent (access-list entries, authorizations, ...) are written the
// same way from their own schemas.
//
// Run by tests/stack/test_wire_node_schemas.py with `node --test`:
//   WARDEN_SCHEMA_DIR    the directory `warden schemas export` wrote
//   WARDEN_SCHEMA_CASES  a JSON file: [{"name", "seed", "intent": {what the producer gives}}, ...]
//   WARDEN_SCHEMA_OUT    where this writes, per case, the intent it signed and, to show that the
//                        marks matter, the same intent signed with every marked default written in

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { test } from "node:test";

import { canonical, ed25519Sign, parseExact, privateKeyFromSeed, rawPublicKey, sha256 } from "./wire.mjs";

const OMIT = "x-omit-when-default";
const schema = JSON.parse(readFileSync(`${process.env.WARDEN_SCHEMA_DIR}/TransactionIntent.schema.json`, "utf8"));
const cases = parseExact(readFileSync(process.env.WARDEN_SCHEMA_CASES, "utf8"));
const results = {};

const equal = (a, b) => canonical(a).equals(canonical(b));
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function resolve(s) {
  return s && s.$ref ? schema.$defs[s.$ref.split("/").pop()] : s;
}

// The schema of a record among a property's alternatives (a $ref, or anyOf [$ref, null]).
function recordSchema(s) {
  const options = (s.anyOf || [s]).map(resolve);
  return options.find((o) => o && o.type === "object" && o.properties);
}

function written(s, value, keepMarked) {
  if (Array.isArray(value)) return value.map((item) => written(resolve(s.items) || {}, item, keepMarked));
  if (!isObject(value)) return value;
  const record = recordSchema(s);
  if (record) return fill(record, value, keepMarked);
  const map = (s.anyOf || [s]).map(resolve).find((o) => o && isObject(o.additionalProperties));
  if (map) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, written(map.additionalProperties, v, keepMarked)]));
  return value; // a typed-data domain or message: as given
}

// A record from its schema: every property, given or at its default; a marked one at its default
// left out (unless keepMarked, which breaks the rule on purpose).
function fill(record, given, keepMarked = false, path = "") {
  for (const name of Object.keys(given)) {
    if (!(name in record.properties)) throw new Error(`${path}${name}: not a property of the schema`);
  }
  const out = {};
  for (const [name, prop] of Object.entries(record.properties)) {
    if (!(name in given) && !("default" in prop)) throw new Error(`${path}${name}: required, no default`);
    const value = name in given ? given[name] : prop.default;
    if (prop[OMIT] === true && equal(value, prop.default) && !keepMarked) continue;
    out[name] = written(prop, value, keepMarked);
  }
  return out;
}

function signed(seed, given, keepMarked) {
  const { signature, ...rest } = fill(schema, given, keepMarked); // the signature is not in its own bytes
  const bytes = canonical(rest);
  const key = privateKeyFromSeed(seed);
  return {
    intent: { ...rest, signature: ed25519Sign(key, bytes).toString("hex") },
    signing_bytes: bytes.toString("utf8"),
    digest: sha256(bytes).toString("hex"),
    public_key: "0x" + rawPublicKey(key).toString("hex"),
  };
}

test("the exported schema marks fields and gives each a default", () => {
  const marked = Object.entries(schema.properties).filter(([, p]) => p[OMIT] === true);
  assert.ok(marked.length > 0, "no property is marked x-omit-when-default");
  for (const [name, prop] of marked) assert.ok("default" in prop, `${name} is marked but has no default`);
});

for (const c of cases) {
  test(`an intent built from the schema alone: ${c.name}`, () => {
    const answer = signed(c.seed, c.intent, false);
    const record = parseExact(answer.signing_bytes);
    for (const [name, prop] of Object.entries(schema.properties)) {
      if (name === "signature") continue;
      const atDefault = "default" in prop && !(name in c.intent && !equal(c.intent[name], prop.default));
      // Written unless marked and at its default.
      assert.equal(name in record, !(prop[OMIT] === true && atDefault), name);
    }
    const filled = signed(c.seed, c.intent, true);
    assert.notEqual(filled.signing_bytes, answer.signing_bytes, "writing the marked defaults changed nothing");
    results[c.name] = { ...answer, marked_defaults_written: filled };
    writeFileSync(process.env.WARDEN_SCHEMA_OUT, canonical(results));
  });
}
