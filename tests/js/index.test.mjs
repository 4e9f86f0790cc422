import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const DIR = new URL("../../backend/finetune_studio/dashboard/", import.meta.url);

/** The modules that `file` imports or re-exports statically, and theirs (dynamic imports are left out). */
function staticImports(file, seen = new Set()) {
  for (const m of readFileSync(new URL(file, DIR), "utf8").matchAll(/^(?:import|export)\s[^;]*?from\s+"\.\/([\w.-]+\.js)"/gms)) {
    if (!seen.has(m[1])) {
      seen.add(m[1]);
      staticImports(m[1], seen);
    }
  }
  return seen;
}

test("index.html preloads every module that main.js imports, and no other", () => {
  const html = readFileSync(new URL("index.html", DIR), "utf8");
  const preloaded = [...html.matchAll(/<link rel="modulepreload" href="\/static\/([\w.-]+\.js)">/g)].map((m) => m[1]);
  assert.deepEqual(preloaded.toSorted(), [...staticImports("main.js")].toSorted());
});
