// @ts-check
/** Job specs as people read them: TOML text (as in finetune.toml) and differences between jobs. Pure. */

/** @param {any} v */
function isTable(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** @param {string} key */
function tomlKey(key) {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}

/** @param {any} value @returns {string} */
function tomlValue(value) {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    return Number.isFinite(value) ? String(value) : value > 0 ? "inf" : value < 0 ? "-inf" : "nan";
  }
  if (typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `[${value.map(tomlValue).join(", ")}]`;
  if (isTable(value)) {
    const parts = Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => `${tomlKey(k)} = ${tomlValue(v)}`);
    return parts.length ? `{ ${parts.join(", ")} }` : "{}";
  }
  return JSON.stringify(String(value));
}

/**
 * A spec as finetune.toml text: scalars first, then one [table] per nested object. TOML has no null,
 * so unset (null) keys are left out, as a user would leave them out of the file.
 * @param {Record<string, any>} spec
 * @returns {string}
 */
export function toToml(spec) {
  /** @type {string[]} */
  const lines = [];
  /** @param {Record<string, any>} table @param {string[]} path */
  const emit = (table, path) => {
    const entries = Object.entries(table).filter(([, v]) => v !== null && v !== undefined);
    const scalars = entries.filter(([, v]) => !isTable(v) || Object.keys(v).length === 0);
    const tables = entries.filter(([, v]) => isTable(v) && Object.keys(v).length > 0);
    if (path.length && scalars.length) {
      if (lines.length) lines.push("");
      lines.push(`[${path.map(tomlKey).join(".")}]`);
    }
    for (const [k, v] of scalars) lines.push(`${tomlKey(k)} = ${tomlValue(v)}`);
    for (const [k, v] of tables) emit(v, [...path, k]);
  };
  emit(spec, []);
  return lines.join("\n") + "\n";
}

/**
 * Dotted keys to leaf values: {training: {epochs: 3}} -> {"training.epochs": 3}.
 * @param {Record<string, any>} spec
 * @param {string} [prefix]
 * @returns {Record<string, any>}
 */
export function flatten(spec, prefix = "") {
  /** @type {Record<string, any>} */
  const out = {};
  for (const [k, v] of Object.entries(spec ?? {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (isTable(v) && Object.keys(v).length) Object.assign(out, flatten(v, key));
    else out[key] = v;
  }
  return out;
}

/**
 * The keys whose values differ between specs, each with every spec's value (undefined where a spec
 * lacks it), sorted by key.
 * @param {Record<string, any>[]} specs
 * @returns {{key: string, values: any[]}[]}
 */
export function diffSpecs(specs) {
  const flat = specs.map((s) => flatten(s));
  const keys = new Set(flat.flatMap((f) => Object.keys(f)));
  /** @type {{key: string, values: any[]}[]} */
  const rows = [];
  for (const key of [...keys].sort()) {
    const values = flat.map((f) => f[key]);
    const first = JSON.stringify(values[0] ?? null);
    if (values.some((v) => JSON.stringify(v ?? null) !== first)) rows.push({ key, values });
  }
  return rows;
}

/**
 * What a job ran with, for diffing: a managed job's spec; an attached run has none (null) and shows
 * the TrainingArguments its script reported, under `training_args`.
 * @param {{spec: Record<string, any>|null, training_args: Record<string, any>|null}} job
 * @returns {Record<string, any>}
 */
export function jobSettings(job) {
  return job.spec ?? { training_args: job.training_args ?? {} };
}
