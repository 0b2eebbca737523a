// The TypeScript client against a live stack (`warden api`, the worker, the signer, Anvil), as a
// TypeScript agent runtime uses it. Run by tests/stack/test_http_api.py, which starts the stack
// and gives the addresses and the agent's API key in the environment; viem, a library of its own,
// checks what Warden signed and what Anvil mined.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createPublicClient, http, parseEther, recoverMessageAddress, recoverTransactionAddress } from "viem";
import { createClient } from "../dist/index.js";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: tests/stack/test_http_api.py sets it`);
  return value;
};
const agentId = env("WARDEN_TEST_AGENT");
const address = env("WARDEN_TEST_AGENT_ADDRESS");
const dest = env("WARDEN_TEST_DEST");
const client = createClient({ baseUrl: env("WARDEN_TEST_API_URL"), apiKey: env("WARDEN_TEST_API_KEY") });
const chain = createPublicClient({ transport: http(env("WARDEN_TEST_RPC_URL")) });

test("a transfer is signed, broadcast and mined on Anvil", async () => {
  const { data: tx, status, error } = await client.agents.submitTransaction(agentId, {
    chain: "anvil",
    to: dest,
    value: "0.001",
    data: "0x",
  });
  assert.equal(status, 201, JSON.stringify(error));
  assert.ok(["broadcast", "mined"].includes(tx.status));
  assert.equal(tx.from, address);
  const receipt = await chain.waitForTransactionReceipt({ hash: tx.tx_hash, timeout: 120_000 });
  assert.equal(receipt.status, "success");
  assert.equal(receipt.to.toLowerCase(), dest.toLowerCase());
  const { data: looked } = await client.agents.getTransaction(agentId, tx.id);
  assert.equal(looked.tx_hash, tx.tx_hash);
  assert.equal(looked.signed_tx, undefined); // only with include_signed_tx
});

test("a refusal is read by its code and stage", async () => {
  const { data, error, status } = await client.agents.submitTransaction(agentId, {
    chain: "anvil",
    to: dest,
    value: "1.5",
  });
  assert.equal(status, 403);
  assert.equal(data, undefined);
  assert.equal(error.stage, "value_cap");
  assert.ok(error.code.length > 0 && error.detail.length > 0);
});

test("sign-only bytes recover to the agent's address with viem, and a retry is idempotent", async () => {
  const idempotencyKey = crypto.randomUUID();
  const body = { chain: "anvil", to: dest, value: "0.002" };
  const first = await client.agents.signTransaction(agentId, body, { idempotencyKey });
  assert.equal(first.status, 201, JSON.stringify(first.error));
  assert.equal(first.data.status, "sign_only");
  assert.equal(first.data.value_wei, parseEther("0.002").toString());
  const signer = await recoverTransactionAddress({ serializedTransaction: first.data.signed_tx });
  assert.equal(signer, address);
  const again = await client.agents.signTransaction(agentId, body, { idempotencyKey });
  assert.equal(again.status, 200);
  assert.equal(again.data.id, first.data.id);
  const other = await client.agents.signTransaction(agentId, { ...body, value: "0.003" }, { idempotencyKey });
  assert.equal(other.status, 422);
  assert.equal(other.error.code, "IDEMPOTENCY_KEY_REUSED");
});

test("a personal_sign signature recovers to the agent's address with viem", async () => {
  const message = "Hello from my agent!";
  const { data, status, error } = await client.agents.sign(agentId, { intent_type: "personal_sign", chain: "anvil", message });
  assert.equal(status, 201, JSON.stringify(error));
  assert.equal(await recoverMessageAddress({ message, signature: data.signature }), address);
});

test("simulation, chains, and the admins' key operations", async () => {
  const { data: sim } = await client.agents.simulateTransaction(agentId, { chain: "anvil", to: dest, value: "0.5" });
  assert.equal(sim.status, "success");
  assert.equal(sim.gas_used, 21000);
  assert.ok(sim.balance_changes.some((row) => row.address.toLowerCase() === dest.toLowerCase() && row.token === "ETH"));
  const { data: chains } = await client.chains.list();
  assert.ok(chains.chains.some((c) => c.name === "anvil" && c.chain_id === 31337));
  const { data: keys } = await client.signingKeys.list(agentId);
  assert.deepEqual(keys.keys.map((k) => k.address), [address]);
  const refused = await client.signingKeys.rotate(agentId, "anvil");
  assert.equal(refused.status, 403);
  assert.equal(refused.error.error, "admins_only");
});
