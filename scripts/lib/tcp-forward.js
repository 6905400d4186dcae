#!/usr/bin/env node
// A TCP forwarder: listens on <listen address>:<port> and pipes each connection to <target
// address>:<port>. services.sh runs one for the Hardhat node, whose `--hostname` takes a single
// address, so that the chain answers on the device bridge (SHOAL_BIND_ADDRESS) as well as on
// 127.0.0.1. Usage: tcp-forward.js <listen address> <port> <target address> <port>
"use strict";
const net = require("node:net");

const [listenHost, listenPort, targetHost, targetPort] = process.argv.slice(2);
if (!listenHost || !listenPort || !targetHost || !targetPort) {
  process.stderr.write("usage: tcp-forward.js <listen address> <port> <target address> <port>\n");
  process.exit(2);
}
const server = net.createServer((client) => {
  const upstream = net.connect({ host: targetHost, port: Number(targetPort) });
  client.pipe(upstream).pipe(client);
  const close = () => (client.destroy(), upstream.destroy());
  client.on("error", close);
  upstream.on("error", close);
});
server.on("error", (error) => {
  process.stderr.write(`tcp-forward: ${error.message}\n`);
  process.exit(1);
});
server.listen(Number(listenPort), listenHost, () =>
  process.stdout.write(`forwarding ${listenHost}:${listenPort} -> ${targetHost}:${targetPort}\n`),
);
// Open connections end with the process: a client reconnects, as it would to a restarted node.
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
