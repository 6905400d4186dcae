/**
 * Broker credentials of the fleet's devices (docs/mqtt.md, "Authentication and ACL"). The broker's
 * admin (the user of SHOAL_MQTT_URL) creates one client per device in Mosquitto's dynamic security
 * plugin at enrollment, over $CONTROL/dynamic-security/v1: it may publish only under
 * shoal/v1/devices/<id>/#, the chain-derived topics (it bridges) and read shoal/#.
 *
 * A device's password is derived from the admin password (HMAC), so fleet.json stores none and a
 * restarted worker gets the same one; a real device owner receives hers from the broker's operator
 * (docs/operate-a-device.md). A broker without credentials in its URL (anonymous, as the tests'
 * private brokers) provisions nothing and the workers connect as the URL says.
 */
import { createHmac } from "node:crypto";
import mqtt from "mqtt";

export interface DeviceCredentials {
  username: string;
  password: string;
}

const CONTROL = "$CONTROL/dynamic-security/v1";

/** The broker URL without its user:password (what logs and fleet views may show). */
export function withoutCredentials(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//");
}

function admin(url: string): DeviceCredentials | undefined {
  const parsed = new URL(url);
  if (!parsed.username || !parsed.password) return undefined;
  return { username: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) };
}

/**
 * The broker user of a device: named after the DeviceRegistry too, so fleets of two deployments on
 * one broker never share a user (their ids repeat).
 */
export function deviceCredentials(
  adminUrl: string,
  deviceRegistry: string,
  deviceId: number,
): DeviceCredentials | undefined {
  const a = admin(adminUrl);
  if (!a) return undefined;
  const username = `device-${deviceRegistry.slice(2, 10).toLowerCase()}-${deviceId}`;
  const password = createHmac("sha256", a.password).update(`shoal device ${username}`).digest("base64url");
  return { username, password };
}

let controlSessions = 0;

/** Sends dynamic-security commands as the admin; resolves with each command's error ("" if none). */
async function control(adminUrl: string, commands: Record<string, unknown>[]): Promise<string[]> {
  const client = await mqtt.connectAsync(adminUrl, {
    // A counter, not only the time: two sessions opened in the same millisecond would share a
    // client id, and the broker would drop the first (hollow devices provision in parallel).
    clientId: `shoal-fleet-provision-${process.pid}-${Date.now()}-${++controlSessions}`,
    clean: true,
    connectTimeout: 5_000,
    reconnectPeriod: 0,
  });
  try {
    const response = new Promise<string[]>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error("the broker did not answer the dynamic-security commands")),
        10_000,
      );
      client.on("message", (_topic, payload) => {
        clearTimeout(timer);
        const { responses } = JSON.parse(payload.toString("utf8")) as { responses: { error?: string }[] };
        resolve(responses.map((r) => r.error ?? ""));
      });
    });
    await client.subscribeAsync(`${CONTROL}/response`, { qos: 1 });
    await client.publishAsync(CONTROL, JSON.stringify({ commands }), { qos: 1 });
    return await response;
  } finally {
    await client.endAsync().catch(() => undefined);
  }
}

/**
 * Creates (or resets) the device's broker user and its role. Idempotent: an existing role or user
 * is reused. Returns undefined for an anonymous broker.
 */
export async function provisionDevice(
  adminUrl: string,
  deviceRegistry: string,
  deviceId: number,
): Promise<DeviceCredentials | undefined> {
  const credentials = deviceCredentials(adminUrl, deviceRegistry, deviceId);
  if (!credentials) return undefined;
  const role = `shoal-device-${deviceId}`;
  const { username, password } = credentials;
  const errors = await control(adminUrl, [
    { command: "createRole", rolename: role },
    {
      command: "addRoleACL",
      rolename: role,
      acltype: "publishClientSend",
      topic: `shoal/v1/devices/${deviceId}/#`,
      allow: true,
    },
    {
      command: "createClient",
      username,
      password,
      textname: `Shoal device ${deviceId}`,
      roles: [{ rolename: role }, { rolename: "shoal-bridge" }, { rolename: "shoal-reader" }],
    },
  ]);
  const fatal = errors.filter((e) => e !== "" && !/already exists/i.test(e));
  if (fatal.length > 0)
    throw new Error(`the broker refused to provision device ${deviceId}: ${fatal.join("; ")}`);
  if (/already exists/i.test(errors[2])) {
    // A re-run: the same password again, and the roles (Mosquitto 2.0 answers "Internal error" to a
    // role the client has already, so those answers are not checked).
    const [password_] = await control(adminUrl, [
      { command: "setClientPassword", username, password },
      { command: "addClientRole", username, rolename: role },
      { command: "addClientRole", username, rolename: "shoal-bridge" },
      { command: "addClientRole", username, rolename: "shoal-reader" },
    ]);
    if (password_ !== "")
      throw new Error(`the broker refused to reset device ${deviceId}'s password: ${password_}`);
  }
  return credentials;
}
