// surfpool, the Solana Foundation's local network on LiteSVM, hosted for the local stack.
//
// The npm package is a native Node module (no command-line program): this script starts one
// Surfnet offline (no mainnet account is fetched), serves its JSON-RPC and its websocket on the
// two ports it is given (the stack picks them in WARDEN_LISTEN_PORTS, as for every listener),
// writes where they answer as one line of JSON to the file given as its argument, drains its
// event queue (a surfnet whose events are not drained stops answering after about a minute), and
// stops it on SIGTERM or SIGINT. About 2 % of a core and 80 MB at a slot every 200 ms.
"use strict";

const fs = require("fs");
const net = require("net");
const path = require("path");

const [, , infoPath, slotTimeMs, rpcPort, wsPort] = process.argv;
if (!infoPath || !slotTimeMs || !rpcPort || !wsPort) {
  console.error("usage: node surfpool.js INFO_FILE SLOT_TIME_MS RPC_PORT WS_PORT");
  process.exit(2);
}
const modulePath = process.env.WARDEN_SURFPOOL_MODULE;
const { Surfnet } = require(modulePath);

// The module takes no port: it binds two the kernel picks, in the ephemeral range. So each of its
// endpoints is served here on the port the stack gave, every connection relayed byte for byte to
// the module's (HTTP and websocket alike), and only these ports are ever handed to a client.
function relay(port, upstreamUrl) {
  const upstream = new URL(upstreamUrl);
  const server = net.createServer((client) => {
    const toNode = net.connect(Number(upstream.port), upstream.hostname);
    client.pipe(toNode);
    toNode.pipe(client);
    client.on("error", () => toNode.destroy());
    toNode.on("error", () => client.destroy());
    client.on("close", () => toNode.destroy());
    toNode.on("close", () => client.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once("error", (err) => reject(new Error(`port ${port}: ${err.message}`)));
    server.listen(Number(port), "127.0.0.1", () => resolve(server));
  });
}

// "clock": a slot every slotTimeMs whether or not transactions come (the default makes one per
// transaction, so a quiet chain never reaches `finalized`, 32 slots on).
const surfnet = Surfnet.startWithConfig({ offline: true, slotTimeMs: Number(slotTimeMs), blockProductionMode: "clock" });

async function announce() {
  await Promise.all([relay(rpcPort, surfnet.rpcUrl), relay(wsPort, surfnet.wsUrl)]);
  const info = { rpc: `http://127.0.0.1:${rpcPort}`, ws: `ws://127.0.0.1:${wsPort}`, pid: process.pid };
  fs.mkdirSync(path.dirname(infoPath), { recursive: true });
  fs.writeFileSync(infoPath + ".tmp", JSON.stringify(info) + "\n");
  fs.renameSync(infoPath + ".tmp", infoPath);
  console.log(JSON.stringify({ ...info, relayed_to: { rpc: surfnet.rpcUrl, ws: surfnet.wsUrl } }));
}
announce().catch((err) => {
  console.error("surfpool's endpoints could not be served:", err.message);
  process.exit(1);
});

const drain = setInterval(() => {
  try {
    surfnet.drainEvents();
  } catch (err) {
    console.error("draining surfpool's events failed:", err);
  }
}, 200);

function stop() {
  clearInterval(drain);
  try {
    surfnet.stop();
  } finally {
    fs.rmSync(infoPath, { force: true });
    process.exit(0);
  }
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
