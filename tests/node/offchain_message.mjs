// Solana off-chain messages by the Solana Foundation's own library (@solana/offchain-messages,
// installed with the TypeScript client's dev dependencies): an oracle outside Warden.
//
// Input on standard input: a JSON array of cases, each one of
//   {"encode": {"version": 0|1, "application_domain": "<base58>" (v0), "format": 0|1|2 (v0),
//               "signatories": ["<base58>", ...], "text": "..."}}
//      -> {"ok": true, "bytes_b64": "<the message's bytes>"} or {"ok": false, "why": "..."}
//   {"verify": {"bytes_b64": "...", "signatures": {"<base58 address>": "<base58 signature>"}}}
//      -> {"ok": true, "message": {decoded fields}} once every required signatory's signature
//         verifies over the bytes, or {"ok": false, "why": "..."}
// Output: one JSON line per case.

import { createRequire } from "node:module";

const require = createRequire(new URL("../../sdk/typescript/package.json", import.meta.url));
const ocm = require("@solana/offchain-messages");
const { getBase58Codec } = require("@solana/codecs-strings");

const base58 = getBase58Codec();

function encode(c) {
  const requiredSignatories = c.signatories.map((address) => ({ address }));
  const message =
    c.version === 0
      ? { version: 0, applicationDomain: c.application_domain, content: { format: c.format, text: c.text }, requiredSignatories }
      : { version: 1, content: c.text, requiredSignatories };
  const envelope = ocm.compileOffchainMessageEnvelope(message);
  return { ok: true, bytes_b64: Buffer.from(envelope.content).toString("base64") };
}

async function verify(c) {
  const content = new Uint8Array(Buffer.from(c.bytes_b64, "base64"));
  const decoded = ocm.getOffchainMessageDecoder().decode(content);
  const signatures = {};
  for (const { address } of decoded.requiredSignatories) {
    const signature = c.signatures[address];
    signatures[address] = signature ? new Uint8Array(base58.encode(signature)) : null;
  }
  await ocm.verifyOffchainMessageEnvelope({ content, signatures });
  return {
    ok: true,
    message: {
      version: decoded.version,
      application_domain: decoded.applicationDomain ?? null,
      format: decoded.version === 0 ? decoded.content.format : null,
      text: decoded.version === 0 ? decoded.content.text : decoded.content,
      signatories: decoded.requiredSignatories.map((s) => s.address),
    },
  };
}

const cases = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
}));
for (const c of cases) {
  let answer;
  try {
    answer = c.encode ? encode(c.encode) : await verify(c.verify);
  } catch (err) {
    answer = { ok: false, why: String(err && err.message ? err.message : err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
