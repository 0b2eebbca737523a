// surfpool, the Solana Foundation's local network on LiteSVM, hosted for the local stack.
//
// The npm package is a native Node module (no command-line program): this script starts one
// Surfnet offline (no mainnet account is fetched), writes where its JSON-RPC answers as one line
// of JSON to the file given as its argument (the module picks free ports itself), drains its
// event queue (a surfnet whose events are not drained stops answering after about a minute), and
// stops it on SIGTERM or SIGINT. About 2 % of a core and 80 MB at a slot every 200 ms.
"use strict";

const fs = require("fs");
const path = require("path");

const [, , infoPath, slotTimeMs = "200"] = process.argv;
if (!infoPath) {
  console.error("usage: node surfpool.js INFO_FILE [SLOT_TIME_MS]");
  process.exit(2);
}
const modulePath = process.env.WARDEN_SURFPOOL_MODULE;
const { Surfnet } = require(modulePath);

// "clock": a slot every slotTimeMs whether or not transactions come (the default makes one per
// transaction, so a quiet chain never reaches `finalized`, 32 slots on).
const surfnet = Surfnet.startWithConfig({ offline: true, slotTimeMs: Number(slotTimeMs), blockProductionMode: "clock" });
const info = { rpc: surfnet.rpcUrl, ws: surfnet.wsUrl, pid: process.pid };
fs.mkdirSync(path.dirname(infoPath), { recursive: true });
fs.writeFileSync(infoPath + ".tmp", JSON.stringify(info) + "\n");
fs.renameSync(infoPath + ".tmp", infoPath);
console.log(JSON.stringify(info));

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
