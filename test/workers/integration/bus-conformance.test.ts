// The Bus port's conformance suite against the MQTT adapter and the real Mosquitto broker.
import pino from "pino";
import { createMqttBus } from "../../../workers/src";
import { busConformance } from "../../shared/bus-conformance";
import { freePort } from "../../shared/processes";
import { requireMqtt, serviceUrls } from "../../shared/services";

const logger = pino({ level: process.env.SHOAL_TEST_LOG ?? "silent" });
let clients = 0;
const clientId = () => `bus-conformance-${process.pid}-${++clients}`;

busConformance("MQTT (Mosquitto)", async () => {
  const urls = serviceUrls();
  await requireMqtt(urls);
  // A free port nobody listens on: connects are refused, the bus keeps reconnecting.
  const deadUrl = `mqtt://127.0.0.1:${await freePort()}`;
  return {
    connect: () => createMqttBus({ url: urls.mqttUrl, clientId: clientId(), logger }),
    connectUnreachable: () =>
      createMqttBus({ url: deadUrl, clientId: clientId(), logger, reconnectPeriodMs: 100_000 }),
  };
});
