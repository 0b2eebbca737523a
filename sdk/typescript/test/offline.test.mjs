// The TypeScript client against servers of the test's own, no Warden needed: an address where
// nothing listens, and a tiny HTTP server that drops or refuses the first try and records the
// Idempotency-Key of every try. Run by tests/stack/test_typescript_client.py.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { test } from "node:test";
import { createClient, requiredFields, UNREACHABLE } from "../dist/index.js";

const BODY = { chain: "anvil", to: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", value: "0.05" };
const QUICK = { attempts: 3, delayMs: 5 };

/** A server answering with ``reply(request, body, n)`` (n counts the requests to one path), and what it saw. */
async function serve(reply) {
  const seen = [];
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      const n = seen.filter((s) => s.url === request.url).length;
      seen.push({ url: request.url, key: request.headers["idempotency-key"], body });
      if (request.url === "/v1/auth/agent-token") {
        const expires = new Date(Date.now() + 900_000).toISOString();
        return json(response, 200, { access_token: "t", token_type: "Bearer", expires_in: 900, expires_at: expires });
      }
      reply(request, response, n);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, seen, close: () => server.close() };
}

function json(response, status, doc, headers = {}) {
  response.writeHead(status, { "Content-Type": "application/json", ...headers });
  response.end(JSON.stringify(doc));
}

const signed = (response) => json(response, 201, { intent_id: "i-1", status: "broadcast", tx_hash: "0xab" });
const posts = (seen) => seen.filter((s) => s.url === "/v1/agents/agent-7/transactions");

test("an unreachable server is an error answer, not a throw", async () => {
  const idle = await serve(() => {});
  idle.close(); // its port now has no listener
  const client = createClient({ baseUrl: idle.url, apiKey: "wak_x", retry: QUICK });
  const answer = await client.agents.submitTransaction("agent-7", BODY);
  assert.equal(answer.status, UNREACHABLE);
  assert.equal(answer.data, undefined);
  assert.equal(answer.error.error, "unreachable");
  const said = new RegExp(`no answer from warden api at ${idle.url} after 3 tries: .*ECONNREFUSED`);
  assert.match(answer.error.detail, said);
  const chains = await client.chains.list();
  assert.equal(chains.status, UNREACHABLE);
  assert.equal(chains.error.error, "unreachable");
});

test("a try that got no answer is tried again with the same Idempotency-Key", async () => {
  const server = await serve((request, response, n) => (n === 0 ? request.socket.destroy() : signed(response)));
  try {
    const client = createClient({ baseUrl: server.url, apiKey: "wak_x", retry: QUICK });
    const answer = await client.agents.submitTransaction("agent-7", BODY);
    assert.equal(answer.status, 201, JSON.stringify(answer.error));
    assert.equal(answer.data.tx_hash, "0xab");
    const tries = posts(server.seen);
    assert.equal(tries.length, 2);
    assert.ok(tries[0].key && tries[0].key === tries[1].key, JSON.stringify(tries));
    assert.equal(answer.idempotencyKey, tries[0].key);
    assert.deepEqual(JSON.parse(tries[1].body), BODY); // only the fields given: the server fills in the rest
  } finally {
    server.close();
  }
});

test("503 and 409 are tried again with the same key, after the Retry-After the server asks", async () => {
  const server = await serve((request, response, n) => {
    if (n === 0) return json(response, 503, { error: "unavailable", detail: "no outcome" }, { "Retry-After": "1" });
    if (n === 1) return json(response, 409, { error: "in_progress", detail: "the first is in progress" });
    signed(response);
  });
  try {
    const client = createClient({ baseUrl: server.url, apiKey: "wak_x", retry: QUICK });
    const began = Date.now();
    const answer = await client.agents.submitTransaction("agent-7", BODY, { idempotencyKey: "order-1234" });
    assert.equal(answer.status, 201);
    assert.ok(Date.now() - began >= 1000, "waited for Retry-After");
    assert.deepEqual(posts(server.seen).map((s) => s.key), ["order-1234", "order-1234", "order-1234"]);
    assert.equal(answer.idempotencyKey, "order-1234");
  } finally {
    server.close();
  }
});

test("a caller's own retry reuses the key the first answer named", async () => {
  const server = await serve((request, response) => request.socket.destroy());
  try {
    const client = createClient({ baseUrl: server.url, apiKey: "wak_x", retry: { attempts: 1 } });
    const first = await client.agents.signTransaction("agent-7", BODY);
    assert.equal(first.status, UNREACHABLE);
    await client.agents.signTransaction("agent-7", BODY, { idempotencyKey: first.idempotencyKey });
    const tries = server.seen.filter((s) => s.url.endsWith("/transactions/sign"));
    assert.deepEqual(tries.map((s) => s.key), [first.idempotencyKey, first.idempotencyKey]);
  } finally {
    server.close();
  }
});

test("an answer that is not Warden's JSON is still an error answer", async () => {
  const server = await serve((request, response) => {
    response.writeHead(502, { "Content-Type": "text/html" });
    response.end("<html>bad gateway</html>");
  });
  try {
    const client = createClient({ baseUrl: server.url, apiKey: "wak_x", retry: QUICK });
    const answer = await client.agents.getTransaction("agent-7", "i-1");
    assert.equal(answer.status, 502);
    assert.equal(answer.error.error, "http_502");
    assert.match(answer.error.detail, /bad gateway/);
  } finally {
    server.close();
  }
});

test("the request types' required fields are the document's", () => {
  const doc = JSON.parse(readFileSync(new URL("../openapi.json", import.meta.url), "utf8"));
  const schemas = doc.components.schemas;
  for (const [name, fields] of Object.entries(requiredFields)) {
    assert.deepEqual([...fields].sort(), [...(schemas[name].required ?? [])].sort(), name);
  }
  // Every schema a request body reaches that has a field with a default is one the client loosens.
  const reached = new Set();
  const walk = (node) => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node === null || typeof node !== "object") return;
    const ref = node.$ref?.replace("#/components/schemas/", "");
    if (ref && !reached.has(ref)) {
      reached.add(ref);
      walk(schemas[ref]);
    }
    Object.values(node).forEach(walk);
  };
  for (const item of Object.values(doc.paths)) {
    for (const operation of Object.values(item)) walk(operation.requestBody ?? null);
  }
  const withDefaults = [...reached].filter((name) =>
    Object.values(schemas[name].properties ?? {}).some((field) => "default" in field),
  );
  assert.deepEqual(withDefaults.filter((name) => !(name in requiredFields)), []);
});
