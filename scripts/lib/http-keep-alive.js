// Preloaded into the Hardhat node by scripts/services.sh (NODE_OPTIONS=--require): idle HTTP
// connections stay open 65 s instead of Node's 5 s. A Hardhat task on a loaded machine can block
// its event loop for more than 5 s while it loads modules; it then reuses a keep-alive socket the
// node has already closed and fails with "SocketError: other side closed" (seen at a load average
// of 17 on 2 cores, for device:enroll and app:publish).
"use strict";
const http = require("node:http");

const createServer = http.createServer;
http.createServer = function (...args) {
  const server = createServer.apply(this, args);
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  return server;
};
