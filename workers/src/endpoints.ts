/**
 * Discovery (issue 15): where this device's replicas answer, published retained on MQTT under the
 * device's own topics, `shoal/v1/devices/<id>/endpoints/<placementId>`, signed like every message
 * of the worker. The reconciler hands over, in each pass before its actions, the replicas that will
 * run with the desired spec and are not unhealthy (nor still starting, when they have a health
 * check); this publishes what is new or changed and clears (an empty retained message) what is
 * gone, so a subscriber to `shoal/v1/devices/+/endpoints/+` always holds the live set.
 */
import type { Logger } from "pino";
import { endpointsMessage, topics as defaultTopics, type EndpointPort, type Topics } from "./domain/topics";
import type { Bus } from "./ports/bus";

/** A replica that answers, as the reconciler sees it. */
export interface ReplicaEndpoints {
  placementId: string;
  deploymentId: string;
  appId: string;
  version: string;
  app: string;
  appVersion: string;
  /** As the engine published them: the exposure address and the host port it picked. */
  ports: {
    containerPort: number;
    protocol: "tcp" | "udp";
    hostIp: string;
    hostPort: number;
    name?: string;
  }[];
}

export interface EndpointPublisher {
  /** The full set of answering replicas now; publishes the difference to the last call. */
  update(replicas: readonly ReplicaEndpoints[]): Promise<void>;
}

export interface EndpointPublisherDeps {
  bus: Pick<Bus, "publish">;
  /** The device's id on chain (the topic level). */
  deviceId: string;
  /** The owner's exposure address, reported when a port is bound to every address (0.0.0.0). */
  exposureAddress: string;
  logger: Logger;
  topics?: Topics;
  now?: () => number;
}

export function createEndpointPublisher(deps: EndpointPublisherDeps): EndpointPublisher {
  const t = deps.topics ?? defaultTopics;
  const now = deps.now ?? Date.now;
  /** What is retained now per placement: the payload's content (without `since`) and `since`. */
  const published = new Map<string, { key: string; since: string }>();
  let chain: Promise<void> = Promise.resolve();

  async function apply(replicas: readonly ReplicaEndpoints[]): Promise<void> {
    const seen = new Set<string>();
    for (const r of replicas) {
      if (r.ports.length === 0) continue; // nothing to reach: an app without ports or egress none
      seen.add(r.placementId);
      const address =
        r.ports[0].hostIp === "0.0.0.0" || r.ports[0].hostIp === ""
          ? deps.exposureAddress
          : r.ports[0].hostIp;
      const ports: EndpointPort[] = r.ports.map((p) => ({
        protocol: p.protocol,
        containerPort: p.containerPort,
        hostPort: p.hostPort,
        ...(p.name !== undefined ? { name: p.name } : {}),
      }));
      const body = {
        deviceId: deps.deviceId,
        deviceAddress: address,
        placementId: r.placementId,
        deploymentId: r.deploymentId,
        appId: r.appId,
        app: r.app,
        appVersion: r.appVersion,
        version: r.version,
        ports,
      };
      const key = JSON.stringify(body);
      const before = published.get(r.placementId);
      if (before?.key === key) continue;
      const since = before?.since ?? new Date(now()).toISOString();
      const message = endpointsMessage({ ...body, since }, t);
      await deps.bus.publish(message.topic, message.payload, { qos: message.qos, retain: true });
      published.set(r.placementId, { key, since });
      deps.logger.info(
        { placementId: r.placementId, address, ports: ports.map((p) => p.hostPort) },
        "endpoints published",
      );
    }
    for (const placementId of [...published.keys()]) {
      if (seen.has(placementId)) continue;
      await deps.bus.publish(t.deviceEndpoints(deps.deviceId, placementId), "", { qos: 1, retain: true });
      published.delete(placementId);
      deps.logger.info({ placementId }, "endpoints withdrawn");
    }
  }

  return {
    update(replicas) {
      // One update at a time, in order: a late publish never overwrites a newer clear.
      const next = chain.then(() => apply(replicas));
      chain = next.catch(() => undefined);
      return next;
    },
  };
}
