// Every family's shapes as a caller meets them, type-checked by `npm run typecheck` (tsc, strict):
// a transfer's answer is typed by the family of the network its `chain` names, and a listed or
// looked-up transaction is narrowed by its `family`.

import { type AnyTransaction, createClient } from "@warden/client";

const client = createClient({ baseUrl: "http://127.0.0.1:8780", apiKey: "wak_x" });

const sol = await client.agents.signTransaction("agent-7", {
  chain: "solana-local",
  to: "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM",
  value: "0.01",
});
if (sol.data) console.log(sol.data.family, sol.data.signature, sol.data.spend);

const btc = await client.agents.submitTransaction("agent-7", {
  chain: "bitcoin-regtest",
  to: "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
  value: "0.001",
});
if (btc.data) {
  console.log(btc.data.family, btc.data.txid, btc.data.fee_sats);
  // @ts-expect-error a Bitcoin payment has a txid, no tx_hash
  console.log(btc.data.tx_hash);
}

const evm = await client.agents.submitTransaction("agent-7", {
  chain: "anvil",
  to: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
  value: "0.05",
});
if (evm.data) console.log(evm.data.tx_hash, evm.data.value_wei);

/** Where a transaction of any family stands on chain: its hash, by the name its family gives it. */
function onChain(tx: AnyTransaction): string | null | undefined {
  if (tx.family === "solana") return tx.tx_signature ?? tx.signature;
  if (tx.family === "bitcoin") return tx.txid;
  return tx.tx_hash;
}

const listed = await client.agents.listTransactions("agent-7");
for (const tx of listed.data?.transactions ?? []) console.log(tx.id, tx.status, onChain(tx));
const found = await client.agents.getTransaction("agent-7", "i-1");
if (found.data) console.log(onChain(found.data));
