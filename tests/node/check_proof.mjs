// An auditor written from docs/wire-formats.md, section 5, alone.
//
// Input on standard input: one case, or a JSON array of cases:
//   {"proof": {what `warden audit prove` prints}, "public_key": "<the ledger's key, 64 hex digits>",
//    "break": optional}
// Output: one JSON line per case: {"ok": true} or {"ok": false, "why": "..."}.
// "break" names one rule of the page to get wrong, so a test can show that the rule matters:
//   no_escape        the text fields hashed without escaping % and |
//   hex_leaf         the leaf hashed over the 64 hex characters instead of the 32 raw bytes
//   no_leaf_prefix   the leaf hashed without its 0x00 prefix
//   left_to_right    every path step hashed as r || p

import { ed25519Verify, runCases, sha256 } from "./wire.mjs";

const VERSION = "warden.audit.proof.v1";

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
  const cp = p.checkpoint;
  // 2. the row hash
  const esc = brk === "no_escape" ? (s) => String(s) : (s) => String(s).replaceAll("%", "%25").replaceAll("|", "%7C");
  const message = [
    e.prev_hash, esc(e.event_id), esc(e.actor), esc(e.action), esc(e.resource), e.ts,
    sha256(Buffer.from(e.details, "utf8")).toString("hex"), esc(e.intent_id ?? ""), esc(e.agent_id ?? ""),
  ].join("|");
  if (sha256(Buffer.from(message, "utf8")).toString("hex") !== e.integrity_hash) {
    return { ok: false, why: "the event's fields do not hash to its integrity_hash" };
  }
  // 3. the checkpoint's signature, under the key given out of band
  const statement = `warden.audit.checkpoint.v1|${cp.chain}|${cp.seq}|${cp.head_hash}|${cp.merkle_root}|${cp.ts}`;
  if (!ed25519Verify(c.public_key, cp.signature, Buffer.from(statement, "ascii"))) {
    return { ok: false, why: "the checkpoint's signature does not verify under the ledger's public key" };
  }
  // 4. line-up
  if (cp.chain !== e.chain || p.leaf_index !== e.seq || p.tree_size !== cp.seq + 1) {
    return { ok: false, why: "the proof does not line up (chain, leaf_index = seq, tree_size = checkpoint seq + 1)" };
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
  if (r.toString("hex") !== cp.merkle_root) {
    return { ok: false, why: "the audit path does not lead to the signed merkle_root" };
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
