/**
 * The Shoal console: a static page that reads the chain over JSON-RPC and live state over MQTT
 * WebSockets, with no backend of its own. Routes live in the hash (#/fleet, #/apps,
 * #/timeline?app=…, #/device/<id>) so any static host serves every page from one index.html.
 */
import { createChainReader } from "./chain";
import { ConfigError, loadConfig, type ConsoleConfig } from "./config";
import { h } from "./dom";
import { createLive } from "./live";
import { appsPage } from "./pages/apps";
import { devicePage } from "./pages/device";
import { fleetPage } from "./pages/fleet";
import type { AppContext, Page } from "./pages/page";
import { timelinePage } from "./pages/timeline";
import "./styles.css";
import { withoutCredentials } from "./verify";

/** How often the console asks the node for a new block; each new one refreshes the page. */
const POLL_MS = 1000;

const main = document.getElementById("main")!;
const banner = document.getElementById("banner")!;
const chainInfo = document.getElementById("chain-info")!;

function showError(title: string, detail: string): void {
  main.replaceChildren(h("h2", { tabindex: -1 }, title), h("p", { class: "error" }, detail));
}

async function start(): Promise<void> {
  let config: ConsoleConfig;
  try {
    config = await loadConfig(location.search);
  } catch (error) {
    showError("The console has no chain to read", (error as Error).message);
    if (!(error instanceof ConfigError)) console.error(error);
    return;
  }
  const chain = createChainReader(config);
  const live = createLive({
    url: config.mqttUrl,
    topicRoot: config.topicRoot,
    chainId: config.chainId,
    sender: (id) => chain.sender(id),
  });
  // The broker URL may carry the viewer's password (mqtt.js reads it from the URL): never shown.
  const mqttShown = withoutCredentials(config.mqttUrl);
  const rpcShown = withoutCredentials(config.rpcUrl);

  let page: Page | undefined;
  let running = false;
  let again = false;
  let lastRefreshed = -1;
  let chainError = "";

  const ctx: AppContext = {
    config,
    chain,
    live,
    head: { number: 0, timestamp: 0 },
    requestRefresh: () => void refresh(true),
  };

  const drawBanner = () => {
    const broker = live.state.broker;
    const lines: string[] = [];
    if (chainError)
      lines.push(
        `The chain cannot be read at ${rpcShown}: ${withoutCredentials(chainError)}. What is shown may be out of date.`,
      );
    if (broker === "unreachable")
      lines.push(
        `MQTT unreachable: the broker at ${mqttShown} does not answer (${withoutCredentials(live.state.error)}). Presence, measured usage and resource decisions are not live; chain data is still read from the chain and current.`,
      );
    if (broker === "off")
      lines.push(
        "No MQTT broker is configured (give ?mqtt=ws://…): presence, usage and resource decisions are not shown.",
      );
    banner.hidden = lines.length === 0;
    banner.className = chainError ? "banner bad" : "banner";
    banner.replaceChildren(...lines.map((l) => h("p", {}, l)));
    document.body.dataset.broker = broker;
  };

  /** Reads the head and refreshes the page when it moved (or when forced); one at a time. */
  async function refresh(force = false): Promise<void> {
    if (running) {
      again ||= force;
      return;
    }
    running = true;
    try {
      ctx.head = await chain.head();
      if (chainError) {
        chainError = "";
        drawBanner();
      }
      chainInfo.textContent = `chain ${config.chainId ?? "?"} at block ${ctx.head.number} · ${rpcShown}`;
      if (page && (force || ctx.head.number !== lastRefreshed)) {
        const current = page;
        await current.refresh();
        if (current === page) {
          lastRefreshed = ctx.head.number;
          document.body.dataset.block = String(ctx.head.number);
        }
      }
    } catch (error) {
      chainError = (error as Error).message.split("\n")[0].slice(0, 200);
      drawBanner();
    } finally {
      running = false;
      if (again) {
        again = false;
        void refresh(true);
      }
    }
  }

  function route(): void {
    const [path, q = ""] = (location.hash.replace(/^#/, "") || "/fleet").split("?");
    const query = new URLSearchParams(q);
    const device = /^\/device\/(\d+)$/.exec(path);
    page =
      path === "/apps"
        ? appsPage(ctx)
        : path === "/timeline"
          ? timelinePage(ctx, query)
          : device
            ? devicePage(ctx, Number(device[1]))
            : fleetPage(ctx);
    document.title = `${page.title} · Shoal console`;
    for (const a of document.querySelectorAll<HTMLAnchorElement>("nav a"))
      a.toggleAttribute("aria-current", (a.getAttribute("href") ?? "").split("?")[0] === `#${path}`);
    page.mount(main);
    main.querySelector<HTMLElement>("h2")?.focus({ preventScroll: true });
    lastRefreshed = -1;
    void refresh(true);
  }

  live.onChange((what) => {
    if (what === "broker") drawBanner();
    if (what === "chain") void refresh(true);
    else page?.redraw();
  });
  window.addEventListener("hashchange", route);
  // The skip link must not change the hash (it holds the route): it moves focus instead.
  document.querySelector(".skip")?.addEventListener("click", (e) => {
    e.preventDefault();
    main.focus();
  });
  drawBanner();
  route();
  setInterval(() => void refresh(), POLL_MS);
  // Ages (heartbeat, durations) move with the clock even when nothing else does.
  setInterval(() => page?.redraw(), 1000);
}

void start();
