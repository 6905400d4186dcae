// The ContentStore port's conformance suite against the Kubo adapter and the real Kubo node.
import { createKuboContentStore } from "../../../workers/src";
import { contentStoreConformance } from "../../shared/content-store-conformance";
import { freePort } from "../../shared/processes";
import { requireKubo, serviceUrls } from "../../shared/services";

contentStoreConformance("Kubo", async () => {
  const urls = serviceUrls();
  await requireKubo(urls);
  return {
    store: createKuboContentStore({ url: urls.kuboUrl }),
    // A free port nobody listens on: every request is refused.
    unreachable: createKuboContentStore({ url: `http://127.0.0.1:${await freePort()}` }),
  };
});
