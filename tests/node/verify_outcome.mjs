// A client written from docs/wire-formats.md, section 4 (and section 1's canonical JSON) alone.
//
// Input on standard input: one case, or a JSON array of cases:
//   {"record": "<the record's JSON text, as read from the topic>",
//    "topic": "warden.txs.signed" (optional: without it the record's kind is told by its members),
//    "keys": {"worker": {"<key id>": "0x<public key hex>"}, "signer": {...}},
//    "intent_digest": "<your intent's digest>"        (optional),
//    "sent_sha256": "<SHA-256 of the bytes you sent>" or "sent_b64": "<those bytes, base64>" (optional),
//    "break": optional}
// Output: one JSON line per case: {"ok": true, "kind": ..., "role": ...} or {"ok": false, "why": "..."}.
// "break" names one rule of the page to get wrong, so a test can show that the rule matters:
//   unsorted         members in the order received
//   double_numbers   the record read with JSON.parse (integers past 2**53 change)
//   ascii_escape     non-ASCII characters written as \u escapes

import { canonical, ed25519Verify, parseExact, runCases, sha256 } from "./wire.mjs";

const BY_TOPIC = {
  "warden.intents.rejected": "IntentRejected",
  "warden.intents.approved": "IntentApproved",
  "warden.intents.awaiting_approval": "IntentParked",
  "warden.intents.overdue": "IntentOverdue",
  "warden.intents.abandoned": "IntentAbandoned",
  "warden.txs.signed": "SignedTransaction",
  "warden.messages.signed": "SignedMessage",
  "warden.solana.signed": "SignedSolanaTransaction",
  "warden.solana.messages.signed": "SignedSolanaMessage",
  "warden.dlq": "DeadLetter",
};

function kindOf(record, topic) {
  if (topic) {
    if (topic.startsWith("warden.stage.")) return "StageEnvelope";
    if (!(topic in BY_TOPIC)) throw new Error(`${topic} is not an outcome topic`);
    return BY_TOPIC[topic];
  }
  if ("signed_tx" in record && "recent_blockhash" in record) return "SignedSolanaTransaction";
  if ("message_sha256" in record) return "SignedSolanaMessage";
  if ("signed_tx" in record) return "SignedTransaction";
  if ("message_hash" in record) return "SignedMessage";
  if ("payload_sha256" in record) return "DeadLetter";
  if ("decided_at" in record && "code" in record) return "IntentRejected";
  if ("parked_at" in record) return "IntentParked";
  if ("approved_at" in record) return "IntentApproved";
  if ("abandoned_at" in record) return "IntentAbandoned";
  if ("overdue_at" in record) return "IntentOverdue";
  if ("stage" in record && "policy" in record) return "StageEnvelope";
  throw new Error("not an outcome record");
}

// The table of section 4: who may sign each record.
function roles(kind, record) {
  if (kind.startsWith("Signed")) return ["signer"];  // a transaction or a message, EVM or Solana
  if (kind === "IntentRejected" && record.stage === "signing") return ["signer"];
  if (kind === "DeadLetter") return ["worker", "signer"];
  return ["worker"];
}

function check(c) {
  const brk = c.break;
  const record = brk === "double_numbers" ? JSON.parse(c.record) : parseExact(c.record);
  if (record === null || typeof record !== "object" || Array.isArray(record)) {
    return { ok: false, why: "not a JSON object" };
  }
  const kind = kindOf(record, c.topic);
  const allowed = roles(kind, record);
  // 1. signed_by names a pinned key of an allowed role
  let role = null;
  let publicKey = null;
  for (const r of allowed) {
    const pinned = (c.keys || {})[r] || {};
    if (typeof record.signed_by === "string" && Object.hasOwn(pinned, record.signed_by)) {
      role = r;
      publicKey = pinned[record.signed_by];
      break;
    }
  }
  const signedBy = JSON.stringify(record.signed_by);
  if (publicKey === null) {
    return { ok: false, why: `signed_by ${signedBy} is not a pinned ${allowed.join(" or ")} key (${kind})` };
  }
  // 2. the signature over the outcome signing bytes: the record without service_signature, canonical
  const signature = record.service_signature;
  const body = {};
  for (const k of Object.keys(record)) {
    if (k === "service_signature") continue;
    Object.defineProperty(body, k, { value: record[k], enumerable: true, writable: true, configurable: true });
  }
  const options = brk === "unsorted" ? { sort: false } : brk === "ascii_escape" ? { asciiOnly: true } : {};
  if (typeof signature !== "string" || !ed25519Verify(publicKey, signature, canonical(body, options))) {
    return { ok: false, why: `the service signature does not verify against ${role} key ${signedBy}` };
  }
  // 3. the digest it must carry
  const boundToBytes =
    kind === "IntentRejected" &&
    record.stage === "intake" &&
    (record.code === "INVALID_INTENT" || record.code === "AGENT_SIGNATURE_INVALID");
  let expected;
  if (boundToBytes) {
    expected = c.sent_sha256;
    if (expected === undefined && c.sent_b64 !== undefined) {
      expected = sha256(Buffer.from(c.sent_b64, "base64")).toString("hex");
    }
    if (expected === undefined && c.intent_digest !== undefined) {
      const why = `an ${record.code} rejection is bound to the SHA-256 of the bytes sent, never to an intent's digest`;
      return { ok: false, why };
    }
  } else {
    expected = c.intent_digest;
    if (expected === undefined && (c.sent_sha256 !== undefined || c.sent_b64 !== undefined)) {
      const why =
        "only an INVALID_INTENT or AGENT_SIGNATURE_INVALID rejection can be bound to the bytes sent; this client read no intent in them";
      return { ok: false, why };
    }
  }
  if (expected !== undefined && record.intent_digest !== expected) {
    return { ok: false, why: "it is about another intent or other bytes (intent_digest differs)" };
  }
  return { ok: true, kind, role };
}

runCases((c) => {
  try {
    return check(c);
  } catch (err) {
    return { ok: false, why: `malformed: ${err.message}` };
  }
});
