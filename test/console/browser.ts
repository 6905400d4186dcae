// Headless Chromium for the console's tests: Debian's chromium package (browser downloads do not
// work on these machines), installed on demand the way scripts/services.sh installs its services,
// driven by playwright-core.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];

export function chromiumPath(): string {
  const found = process.env.SHOAL_CHROMIUM ?? CANDIDATES.find(existsSync);
  if (found !== undefined) return found;
  if (process.getuid?.() !== 0 || !existsSync("/usr/bin/apt-get"))
    throw new Error(
      "Chromium is missing: install Debian's chromium package (apt-get install chromium) or set SHOAL_CHROMIUM",
    );
  console.log("      installing chromium with apt-get (once per machine)");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update", "-qq"], { stdio: "ignore", env });
  execFileSync("apt-get", ["install", "-y", "-qq", "chromium"], { stdio: "ignore", env });
  const installed = CANDIDATES.find(existsSync);
  if (installed === undefined) throw new Error("apt-get install chromium gave no /usr/bin/chromium");
  return installed;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    // Root in a container: Chromium's sandbox needs user namespaces it may not get.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
}
