/**
 * Bus over MQTT 3.1.1 (mqtt.js). Reconnects on its own; publishes while disconnected reject with a
 * retryable BusError instead of piling up in mqtt.js's unbounded offline queue (see ports/bus.ts).
 *
 * Device presence: with a deviceId, the connection carries a Last Will of a retained "offline" on
 * shoal/v1/devices/<deviceId>/status, publishes a retained "online" there on every (re)connect,
 * and `close()` publishes "offline" itself before the clean DISCONNECT (which cancels the Will).
 */
import { connect, type IClientOptions, type MqttClient } from "mqtt";
import { createRequire } from "node:module";
import type { Logger } from "pino";
import {
  createTopics,
  deviceStatusMessage,
  levelsMatch,
  type DeviceStatusPayload,
  type Qos,
} from "../domain/topics";
import { onAbort } from "../lib/supervise";
import { BusError, type Bus, type BusEvent, type BusState, type MessageHandler } from "../ports/bus";

// The port's error (workers/src/ports/bus.ts), re-exported for this adapter's users.
export { BusError };

export interface MqttBusDeps {
  /** mqtt://host:port */
  url: string;
  /** Unique per connection: the broker drops the older of two clients with the same id. */
  clientId: string;
  logger: Logger;
  /** Device whose presence this connection announces (status topic, Last Will). */
  deviceId?: string | number;
  /** Root of the status topic (default shoal/v1); see createTopics. */
  topicRoot?: string;
  username?: string;
  password?: string;
  /** A sent QoS 1 publish without PUBACK after this long rejects (default 10,000 ms). */
  publishTimeoutMs?: number;
  /** Pause between reconnect attempts (default 1,000 ms). */
  reconnectPeriodMs?: number;
  /** Default 5,000 ms. */
  connectTimeoutMs?: number;
  /** False when the device never bridges: its presence says so and the election skips it. */
  bridgeCandidate?: boolean;
  /** MQTT keepalive; the broker fires the Will after 1.5 x this without traffic (default 15 s). */
  keepaliveSeconds?: number;
  /** Called on every failed publish: the worker counts them ("mqtt publish failures"). */
  onPublishFailure?: (topic: string, error: BusError) => void;
  /**
   * Seals the status messages this bus publishes itself (online, offline, the Last Will) as the
   * signed bus seals everything else (workers/src/signed-bus.ts); returns the payload to send.
   */
  seal?: (topic: string, payload: string) => string;
  /** Clock for the `at` of status messages; injectable for tests. */
  now?: () => Date;
}

/** The Bus, plus the mqtt.js client for diagnostics and tests (e.g. to kill the socket). */
export interface MqttBus extends Bus {
  readonly client: MqttClient;
}

/** The largest remaining length mqtt-packet caches (writeToStream.js, `num < 16384`). */
const CACHED_LENGTHS = 16_384;
let lengthCachePrimed = false;

/**
 * mqtt-packet keeps the encoded "remaining length" of every packet it writes below 16 KiB, one
 * Buffer per length, never evicted (writeToStream.js `varByteIntCache`). Each is a 1-4 byte slice
 * of Node's shared 8 KiB Buffer pool made when a length first appears, and by then other
 * allocations have moved the pool on: each new message length pins a pool block of its own, 8 KiB
 * for 2 bytes, up to 128 MiB. The soak's worker grew its external memory by ~1.5 MiB an hour so
 * (49 new blocks in 15 minutes; mqttjs/mqtt-packet#163, open). Writing one packet of every cached
 * length once, back to back, at start fills the cache from a handful of blocks instead: 0.25 MiB
 * of buffers and 1.7 MiB of heap, once per process, about 0.1-0.3 s.
 */
export function primePacketLengthCache(): void {
  if (lengthCachePrimed) return;
  lengthCachePrimed = true;
  // The very module instance mqtt.js writes with (its own dependency, not one of ours).
  const packets = createRequire(require.resolve("mqtt"))("mqtt-packet") as {
    writeToStream: {
      (packet: object, stream: { write(chunk: unknown): boolean; destroy(error?: Error): void }): boolean;
      cacheNumbers: boolean;
    };
  };
  // As the bus's client sets it (writeCache: false below), and before the first write: with it on,
  // that write builds mqtt-packet's cache of all 65,536 two-byte numbers (6.5 MiB of heap), which
  // the client turning it off later does not free.
  packets.writeToStream.cacheNumbers = false;
  const sink = {
    write: () => true,
    destroy: (error?: Error) => {
      throw error ?? new Error("mqtt-packet refused a packet while priming its length cache");
    },
  };
  // A PUBACK has remaining length 2; a QoS 0 PUBLISH on a one-byte topic 3 + its payload.
  packets.writeToStream({ cmd: "puback", messageId: 1 }, sink);
  const payload = Buffer.alloc(CACHED_LENGTHS);
  for (let length = 3; length < CACHED_LENGTHS; length++)
    packets.writeToStream(
      { cmd: "publish", topic: "p", qos: 0, payload: payload.subarray(0, length - 3) },
      sink,
    );
}

export function createMqttBus(deps: MqttBusDeps): MqttBus {
  primePacketLengthCache();
  const { url, clientId, deviceId, publishTimeoutMs = 10_000 } = deps;
  const now = deps.now ?? (() => new Date());
  const log = deps.logger.child({ component: "mqtt-bus", clientId });
  // What logs and errors show: never the credentials a URL may carry (mqtt://user:password@host).
  const shownUrl = url.replace(/\/\/[^@/]*@/, "//");
  const listeners = new Set<(event: BusEvent) => void>();
  const subscriptions = new Map<number, { filter: string; levels: string[]; handler: MessageHandler }>();
  const filterCounts = new Map<string, number>();
  /** The QoS each subscribed filter asked for, for the subscriptions made again on connect. */
  const filterQos = new Map<string, Qos>();
  let nextSubscription = 1;
  let state: BusState = "connecting";

  const topicNames = createTopics(deps.topicRoot);
  const status = (status: DeviceStatusPayload["status"], reason: DeviceStatusPayload["reason"]) => {
    const m = deviceStatusMessage(
      {
        deviceId: String(deviceId),
        status,
        clientId,
        reason,
        at: now().toISOString(),
        ...(deps.bridgeCandidate === false ? { bridge: false } : {}),
      },
      topicNames,
    );
    return deps.seal ? { ...m, payload: deps.seal(m.topic, m.payload) } : m;
  };

  // Sealed before each connection attempt, online first: a sealed message's sequence number must
  // be above the last one consumers accepted on the topic, and the Will fires after the online.
  let online = deviceId === undefined ? undefined : status("online", "connected");
  const will = deviceId === undefined ? undefined : status("offline", "connection-lost");
  const options: IClientOptions = {
    clientId,
    username: deps.username,
    password: deps.password,
    protocolVersion: 4,
    clean: true,
    keepalive: deps.keepaliveSeconds ?? 15,
    reconnectPeriod: deps.reconnectPeriodMs ?? 1_000,
    connectTimeout: deps.connectTimeoutMs ?? 5_000,
    queueQoSZero: false,
    // The bus subscribes its filters again itself on every connect (below): mqtt.js re-subscribes
    // only those whose SUBACK it had, and a SUBSCRIBE lost with a dropped connection left the
    // worker deaf to chain events (seen with 100 hollow devices and "connack timeout").
    resubscribe: false,
    // mqtt-packet's default keeps a Buffer for each of the 65,536 packet ids: ~15 MiB of a device's
    // memory to save a 2-byte allocation per packet.
    writeCache: false,
    will: will && { topic: will.topic, payload: Buffer.from(will.payload), qos: 1, retain: true },
  };
  const client = connect(url, options);

  const emit = (event: BusEvent) => {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (error) {
        log.error({ err: error, event: event.type }, "bus listener threw");
      }
    }
  };

  const fail = (topic: string, error: BusError) => {
    deps.onPublishFailure?.(topic, error);
    emit({ type: "publish-failed", topic, error });
  };

  client.on("connect", (connack) => {
    state = "connected";
    log.info({ url: shownUrl }, "connected");
    if (!connack.sessionPresent)
      for (const [filter, qos] of filterQos)
        client.subscribe(filter, { qos }, (error) => {
          if (error) log.warn({ err: error, filter }, "could not subscribe again; the next connect retries");
        });
    emit({ type: "connected" });
    if (online !== undefined) {
      bus.publish(online.topic, online.payload, { qos: 1, retain: true }).catch((error: unknown) => {
        log.warn({ err: error }, "could not announce online status");
      });
    }
  });
  client.on("close", () => {
    if (state === "connected") {
      log.warn({ url: shownUrl }, "disconnected");
      emit({ type: "disconnected", reason: "connection closed" });
    }
    if (state !== "closed") state = "reconnecting";
  });
  client.on("reconnect", () => {
    if (state === "closed") return;
    state = "reconnecting";
    if (deps.seal && deviceId !== undefined) {
      online = status("online", "connected");
      const next = status("offline", "connection-lost");
      client.options.will = { topic: next.topic, payload: Buffer.from(next.payload), qos: 1, retain: true };
    }
    emit({ type: "reconnecting" });
  });
  // mqtt.js keeps reconnecting after errors; they are only worth a log line.
  client.on("error", (error) =>
    // Once closing, a message still arriving gets its ack written to the ended socket ("write
    // after end", 47 lines when 50 hollow devices stop together): expected, and not the user's concern.
    state === "closed"
      ? log.debug({ err: error }, "mqtt error while closing")
      : log.warn({ err: error }, "mqtt error"),
  );
  client.on("message", (topic, payload, packet) => {
    const levels = topic.split("/");
    for (const { levels: filter, handler } of subscriptions.values()) {
      if (!levelsMatch(filter, levels)) continue;
      try {
        handler({ topic, payload, retained: packet.retain });
      } catch (error) {
        log.error({ err: error, topic }, "message handler threw");
      }
    }
  });

  const abortError = (what: string) => new BusError(`${what} was aborted`);

  /** The function a subscribe returns: drops the handler, and the filter with its last handler. */
  const unsubscribe = (id: number, filter: string) => async () => {
    if (!subscriptions.delete(id)) return;
    const left = (filterCounts.get(filter) ?? 1) - 1;
    if (left > 0) return void filterCounts.set(filter, left);
    filterCounts.delete(filter);
    filterQos.delete(filter);
    if (state === "connected") await client.unsubscribeAsync(filter).catch(() => undefined);
  };

  const bus: MqttBus = {
    client,

    get state() {
      return state;
    },

    ready(opts = {}) {
      if (state === "connected") return Promise.resolve();
      if (state === "closed") return Promise.reject(new BusError("the MQTT bus is closed"));
      // An aborted signal never fires "abort" again: check it before waiting on it.
      if (opts.signal?.aborted) return Promise.reject(abortError("waiting for the MQTT connection"));
      return new Promise((resolve, reject) => {
        let offAbort = () => {};
        const off = bus.on((event) => {
          if (event.type === "connected") done();
          else if (event.type === "closed") done(new BusError("the MQTT bus was closed before it connected"));
        });
        offAbort = onAbort(opts.signal, () => done(abortError("waiting for the MQTT connection")));
        function done(error?: Error) {
          off();
          offAbort();
          if (error) reject(error);
          else resolve();
        }
      });
    },

    publish(topic, payload, opts = {}) {
      if (opts.signal?.aborted) return Promise.reject(abortError(`publishing ${topic}`));
      if (state !== "connected" || !client.connected) {
        const error = new BusError(
          `the MQTT broker at ${shownUrl} is not connected; ${topic} was not published`,
          {
            retryable: true,
          },
        );
        fail(topic, error);
        return Promise.reject(error);
      }
      return new Promise<void>((resolve, reject) => {
        let settled = false;
        const timer = setTimeout(
          () =>
            finish(
              new BusError(`the MQTT broker did not acknowledge ${topic} within ${publishTimeoutMs} ms`, {
                retryable: true,
              }),
            ),
          publishTimeoutMs,
        );
        // One listener on the signal however many publishes wait on it (the bridge runs up to
        // 1,000 at once): see lib/supervise.ts.
        let offAbort = () => {};
        offAbort = onAbort(opts.signal, () => finish(abortError(`publishing ${topic}`)));
        function finish(error?: BusError) {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          offAbort();
          if (!error) return resolve();
          fail(topic, error);
          reject(error);
        }
        // Called synchronously so publish order is call order (the bridge relies on it).
        client.publish(
          topic,
          typeof payload === "string" ? payload : Buffer.from(payload),
          { qos: opts.qos ?? 1, retain: opts.retain ?? false },
          (error) =>
            finish(
              error
                ? new BusError(`publishing ${topic} failed`, {
                    cause: error,
                    retryable: !client.disconnecting,
                  })
                : undefined,
            ),
        );
      });
    },

    async subscribe(filter, handler, opts = {}) {
      const id = nextSubscription++;
      const count = filterCounts.get(filter) ?? 0;
      // The handler is in place before the SUBSCRIBE goes out: the broker sends the retained
      // messages right behind its SUBACK, often in the same read, and mqtt.js emits them before
      // the awaited subscribe resumes here. Registered after, they were lost (a hollow fleet
      // started together saw no retained presence, and every device elected itself a bridge).
      filterCounts.set(filter, count + 1);
      subscriptions.set(id, { filter, levels: filter.split("/"), handler });
      if (count === 0) {
        filterQos.set(filter, (opts.qos ?? 1) as Qos);
        try {
          await client.subscribeAsync(filter, { qos: (opts.qos ?? 1) as Qos });
        } catch (error) {
          // The connection dropped under the SUBSCRIBE: the next connect subscribes again.
          if (state !== "connected" && state !== "closed") {
            log.warn(
              { err: error, filter },
              "subscribe lost with the connection; subscribing again on reconnect",
            );
            return unsubscribe(id, filter);
          }
          filterQos.delete(filter);
          subscriptions.delete(id);
          const left = (filterCounts.get(filter) ?? 1) - 1;
          if (left > 0) filterCounts.set(filter, left);
          else filterCounts.delete(filter);
          throw new BusError(`could not subscribe to ${filter}`, { cause: error, retryable: true });
        }
      }
      return unsubscribe(id, filter);
    },

    on(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },

    async close() {
      if (state === "closed") return;
      if (deviceId !== undefined && state === "connected") {
        const offline = status("offline", "shutdown");
        await bus
          .publish(offline.topic, offline.payload, { qos: 1, retain: true })
          .catch((error: unknown) => log.warn({ err: error }, "could not announce offline status"));
      }
      state = "closed";
      // A graceful end waits for the acks of in-flight QoS 1 messages, which never come while the
      // broker is gone (seen with 50 hollow devices on a starved host): give it 5 s, then force.
      let timer: NodeJS.Timeout | undefined;
      const graceful = await Promise.race([
        client.endAsync().then(() => true),
        new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), 5_000))),
      ]);
      clearTimeout(timer);
      if (!graceful) await client.endAsync(true);
      emit({ type: "closed" });
      log.info("closed");
    },
  };
  return bus;
}
