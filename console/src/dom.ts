/** A few DOM helpers: elements from tag, attributes and children; text is always set as text. */
type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | undefined> = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: (Child | Child[])[]): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

/** A table with a caption, column headers and rows; `label` repeats each header on phone widths. */
export function table(
  caption: string,
  headers: string[],
  rows: { cells: (Child | Child[])[]; attrs?: Record<string, string> }[],
  options: { empty?: string; id?: string } = {},
): HTMLElement {
  const body = rows.map((r) =>
    h(
      "tr",
      r.attrs ?? {},
      r.cells.map((c, i) => h("td", { "data-label": headers[i] }, ...(Array.isArray(c) ? c : [c]))),
    ),
  );
  if (body.length === 0)
    body.push(h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, options.empty ?? "None.")));
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id: options.id, class: "stack" },
      h("caption", {}, caption),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          headers.map((x) => h("th", { scope: "col" }, x)),
        ),
      ),
      h("tbody", {}, body),
    ),
  );
}

export function link(href: string, text: string, attrs: Record<string, string> = {}): HTMLAnchorElement {
  return h("a", { href, ...attrs }, text);
}

export function short(hex: string, n = 6): string {
  return hex.length > 2 * n + 2 ? `${hex.slice(0, n + 2)}…${hex.slice(-n + 2)}` : hex;
}

/** Whole and fractional tokens of an 18-decimals amount, e.g. 150 or 134.5. */
export function tokens(amount: bigint): string {
  const whole = amount / 10n ** 18n;
  const frac = (amount % 10n ** 18n).toString().padStart(18, "0").replace(/0+$/, "").slice(0, 4);
  return frac ? `${whole}.${frac}` : String(whole);
}

export function seconds(s: number): string {
  if (!Number.isFinite(s)) return "—";
  const v = Math.max(0, Math.round(s));
  if (v < 120) return `${v} s`;
  if (v < 7200) return `${Math.floor(v / 60)} min ${v % 60} s`;
  return `${Math.floor(v / 3600)} h ${Math.floor((v % 3600) / 60)} min`;
}

export function cpu(m: number): string {
  return m >= 1000 && m % 1000 === 0 ? `${m / 1000} CPU` : `${m}m`;
}

export function mib(n: number): string {
  return n >= 1024 && n % 1024 === 0 ? `${n / 1024} GiB` : `${n} MiB`;
}

export function isoSeconds(iso: string): string {
  return iso === "" ? "" : iso.replace("T", " ").replace(/\.\d{3}Z$/, "Z");
}

/**
 * Replaces a region's children and gives focus back to the same control (a link by its href, a
 * button or field by its id) when focus was inside: a redraw every second must not throw a
 * keyboard user back to the top of the page.
 */
export function replaceKeepingFocus(region: Element, ...nodes: Node[]): void {
  const active = document.activeElement;
  let selector: string | undefined;
  if (active instanceof HTMLElement && region.contains(active)) {
    if (active.id) selector = `#${CSS.escape(active.id)}`;
    else if (active instanceof HTMLAnchorElement)
      selector = `a[href="${CSS.escape(active.getAttribute("href") ?? "")}"]`;
  }
  region.replaceChildren(...nodes);
  if (selector) (region.querySelector(selector) as HTMLElement | null)?.focus({ preventScroll: true });
}
