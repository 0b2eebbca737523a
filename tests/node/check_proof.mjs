// An auditor written from docs/wire-formats.md, section 5, alone.
//
// Input on standard input: one case, or a JSON array of cases:
//   {"proof": {what `warden audit prove` prints}, "log_key": "<the log's verifier key (vkey)>",
//    "break": optional}
// Output: one JSON line per case: {"ok": true} or {"ok": false, "why": "..."}.
// "break" names one rule of the page to get wrong, so a test can show that the rule matters:
//   no_escape             the text fields hashed without escaping % and |
//   hex_leaf              the leaf hashed over the 64 hex characters instead of the 32 raw bytes
//   no_leaf_prefix        the leaf hashed without its 0x00 prefix
//   left_to_right         every path step hashed as r || p
//   text_without_newline  the note's signature checked over its text without the final newline
//   whole_note            the note's signature checked over the whole note, signature lines included

import { ed25519Verify, runCases, sha256 } from "./wire.mjs";

const VERSION = "warden.audit.proof.v2";
const DASH = "\u2014"; // the em dash that opens a signature line

// Standard base64 (with padding) only: Buffer.from(text, "base64") would skip what is not base64.
const base64 = (text, what) => {
  if (typeof text !== "string" || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new Error(`${what}: expected standard base64`);
  }
  return Buffer.from(text, "base64");
};

// The vkey: <name>+<key ID, 8 hex digits>+<base64 of 0x01 || 32-byte Ed25519 public key>.
function readVkey(vkey) {
  const first = vkey.indexOf("+");
  const second = vkey.indexOf("+", first + 1);
  if (first <= 0 || second < 0) throw new Error("the log key is not <name>+<key ID>+<base64 key>");
  const name = vkey.slice(0, first);
  const keyId = vkey.slice(first + 1, second);
  const raw = base64(vkey.slice(second + 1), "the log key");
  if (raw.length !== 33 || raw[0] !== 0x01) throw new Error("the log key is not an Ed25519 (0x01) key");
  const hashed = Buffer.concat([Buffer.from(name, "utf8"), Buffer.from([0x0a, 0x01]), raw.subarray(1)]);
  const id = sha256(hashed).subarray(0, 4);
  if (id.toString("hex") !== keyId.toLowerCase()) throw new Error("the log key's key ID does not match its key");
  return { name, id, publicKey: raw.subarray(1) };
}

// The checkpoint the note says, if the log's key signed its text; else a string saying why not.
function signedCheckpoint(note, key, brk) {
  if (typeof note !== "string" || !note.endsWith("\n")) return "the checkpoint is a signed note ending in a newline";
  const split = note.lastIndexOf("\n\n");
  if (split < 0) return "the checkpoint note has no blank line before its signatures";
  const text = note.slice(0, split + 1);
  const signed = brk === "text_without_newline" ? text.slice(0, -1) : brk === "whole_note" ? note : text;
  let found = false;
  for (const line of note.slice(split + 2, -1).split("\n")) {
    const parts = line.split(" ");
    if (parts.length !== 3 || parts[0] !== DASH) return "a signature line is not '\u2014 <name> <base64>'";
    const sig = base64(parts[2], "a signature line");
    if (parts[1] !== key.name || sig.length < 4 || !sig.subarray(0, 4).equals(key.id)) continue; // another key's
    const message = Buffer.from(signed, "utf8");
    if (sig.length !== 68 || !ed25519Verify(key.publicKey.toString("hex"), sig.subarray(4).toString("hex"), message)) {
      return "the checkpoint's signature does not verify under the log's key";
    }
    found = true;
  }
  if (!found) return "the checkpoint carries no signature of the log's key";
  const lines = text.split("\n");
  if (lines.length < 4 || lines.slice(0, 3).some((l) => l === "")) return "the checkpoint text is origin, size, root";
  const [origin, sizeText, rootText] = lines;
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) return "the checkpoint's tree size is not a decimal";
  const root = base64(rootText, "the checkpoint's root");
  if (root.length !== 32) return "the checkpoint's root is not 32 bytes";
  return { origin, size: Number(sizeText), root };
}

const hex32 = (text, what) => {
  if (typeof text !== "string" || !/^[0-9a-f]{64}$/.test(text)) {
    throw new Error(`${what}: expected 64 lowercase hex digits`);
  }
  return Buffer.from(text, "hex");
};

function check(c) {
  const brk = c.break;
  const p = c.proof;
  // 1. the format
  if (p === null || typeof p !== "object" || p.version !== VERSION) return { ok: false, why: `not a ${VERSION} proof` };
  const e = p.event;
  // 2. the row hash
  const esc = brk === "no_escape" ? (s) => String(s) : (s) => String(s).replaceAll("%", "%25").replaceAll("|", "%7C");
  const message = [
    e.prev_hash, esc(e.event_id), esc(e.actor), esc(e.action), esc(e.resource), e.ts,
    sha256(Buffer.from(e.details, "utf8")).toString("hex"), esc(e.intent_id ?? ""), esc(e.agent_id ?? ""),
  ].join("|");
  if (sha256(Buffer.from(message, "utf8")).toString("hex") !== e.integrity_hash) {
    return { ok: false, why: "the event's fields do not hash to its integrity_hash" };
  }
  // 3. the checkpoint note's signature, under the log's key given out of band
  const key = readVkey(c.log_key);
  const cp = signedCheckpoint(p.checkpoint, key, brk);
  if (typeof cp === "string") return { ok: false, why: cp };
  // 4. line-up
  if (cp.origin !== `${key.name}/${e.chain}` || p.leaf_index !== e.seq || p.tree_size !== cp.size) {
    return { ok: false, why: "the proof does not line up (origin = <log name>/chain, leaf_index = seq, tree_size = size)" };
  }
  // 5. the audit path, RFC 9162 section 2.1.3.2
  const { leaf_index: index, tree_size: size } = p;
  if (!(Number.isInteger(index) && Number.isInteger(size) && index >= 0 && index < size)) {
    return { ok: false, why: "leaf_index is outside the tree" };
  }
  const data = brk === "hex_leaf" ? Buffer.from(e.integrity_hash, "ascii") : hex32(e.integrity_hash, "integrity_hash");
  let r = sha256(brk === "no_leaf_prefix" ? data : Buffer.concat([Buffer.from([0]), data]));
  let fn = BigInt(p.leaf_index);
  let sn = BigInt(p.tree_size - 1);
  const node = (left, right) => sha256(Buffer.concat([Buffer.from([1]), left, right]));
  for (const [i, text] of p.audit_path.entries()) {
    const sibling = hex32(text, `audit_path[${i}]`);
    if (sn === 0n) return { ok: false, why: "the audit path is longer than the tree is deep" };
    if (brk !== "left_to_right" && (fn % 2n === 1n || fn === sn)) {
      r = node(sibling, r);
      while (fn % 2n === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = node(r, sibling);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) return { ok: false, why: "the audit path is shorter than the tree is deep" };
  if (!r.equals(cp.root)) {
    return { ok: false, why: "the audit path does not lead to the signed root" };
  }
  return { ok: true };
}

runCases((c) => {
  try {
    return check(c);
  } catch (err) {
    return { ok: false, why: `malformed: ${err.message}` };
  }
});
