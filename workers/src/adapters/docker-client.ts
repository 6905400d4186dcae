/**
 * The worker's Docker Engine client: dockerode over the local socket, without the transports a
 * device never uses. dockerode loads its SSH transport (ssh2, with a 16 MiB WebAssembly heap) and
 * its BuildKit session support (gRPC, protobuf) eagerly, about 13 MiB of resident memory together;
 * the worker only talks to a Unix socket and never builds. Those modules are replaced, before
 * dockerode loads, by stand-ins that throw if anything ever calls them.
 */
import Module from "node:module";
import type Docker from "dockerode";

const UNUSED = ["ssh2", "@grpc/grpc-js", "@grpc/proto-loader", "protobufjs"];

let docker: typeof Docker | undefined;

function loadDockerode(): typeof Docker {
  if (docker) return docker;
  const from = { paths: [require.resolve("dockerode")] };
  for (const name of UNUSED) {
    let file: string;
    try {
      file = require.resolve(name, from);
    } catch {
      continue; // not installed: nothing to keep out
    }
    if (require.cache[file]) continue; // already loaded by someone else: leave it
    const unavailable = () => {
      throw new Error(
        `${name} is not loaded by shoal-worker (Docker over SSH and BuildKit are not supported)`,
      );
    };
    const stub = new Module(file);
    stub.loaded = true;
    stub.exports = new Proxy({}, { get: () => unavailable });
    require.cache[file] = stub;
  }
  docker = require("dockerode") as typeof Docker;
  return docker;
}

/** A client of the Docker Engine at `socketPath`. */
export function createDockerClient(socketPath: string): Docker {
  const DockerClient = loadDockerode();
  return new DockerClient({ socketPath });
}
