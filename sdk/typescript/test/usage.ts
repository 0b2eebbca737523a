// The usage the READMEs and docs/http-api.md show, verbatim between the markers (a test compares
// them), type-checked by `npm run typecheck` (tsc, strict, as a user's project compiles it).

// usage: begin
import { createClient } from "@warden/client";

const apiKey = process.env.WARDEN_API_KEY; // what `warden agents api-key --agent agent-7` printed
if (!apiKey) throw new Error("set WARDEN_API_KEY");
const client = createClient({ baseUrl: "http://127.0.0.1:8780", apiKey });
const { data: tx, error, status } = await client.agents.submitTransaction("agent-7", {
  chain: "anvil",
  to: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
  value: "0.05",
});
if (error) console.log(status, error.code, error.stage, error.detail);
else console.log(tx.tx_hash, tx.status);
// usage: end
