// @ts-check
/**
 * Building DOM nodes from data. Text always goes in as text (never innerHTML), so a job name or a log
 * line can hold `<script>` and stay words.
 */

/**
 * @typedef {Record<string, string | number | boolean | null | undefined | ((e: any) => void)>} Attrs
 * @typedef {Node | string | number | null | undefined | false} Child
 */

/**
 * `h("button.primary", {onclick: f, disabled: true}, "Cancel")`: tag, optional classes after dots,
 * attributes (`on*` functions become listeners, `data-*` and the rest attributes; false/null skip),
 * and children (strings become text nodes).
 * @param {string} tag
 * @param {Attrs | null} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = null, ...children) {
  const [name, ...classes] = tag.split(".");
  const node = document.createElement(name || "div");
  if (classes.length) node.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (typeof value === "function") node.addEventListener(key.replace(/^on/, ""), value);
    else if (key === "class") node.className = [node.className, String(value)].filter(Boolean).join(" ");
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

/**
 * @param {Node} node
 * @param {(Child | Child[])[]} children
 */
export function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/**
 * Replace a node's children.
 * @param {Node} node
 * @param {...(Child | Child[])} children
 */
export function replace(node, ...children) {
  while (node.firstChild) node.removeChild(node.firstChild);
  append(node, children);
}

/**
 * @param {string} selector
 * @param {ParentNode} [root]
 * @returns {HTMLElement}
 */
export function $(selector, root = document) {
  const found = root.querySelector(selector);
  if (!found) throw new Error(`no element matches ${selector}`);
  return /** @type {HTMLElement} */ (found);
}

/** A state badge; the class carries the colour. @param {string} state */
export function badge(state) {
  return h(`span.badge.state-${state}`, { "data-state": state }, state);
}

/**
 * Save text as a download (CSV export).
 * @param {string} filename
 * @param {string|Blob} text
 * @param {string} type
 */
export function download(filename, text, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: filename });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
