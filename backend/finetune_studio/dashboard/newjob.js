// @ts-check
/**
 * The New job form, built from `GET /api/schema/job-spec` (the JobSpec's JSON Schema): the task, the
 * model, the data files and the task's columns, the main hyper-parameters, LoRA and resources.
 * The server is the validator: inputs are plain text, an empty one leaves the server's default, and
 * a 422's messages are shown next to the fields they name. "Clone as new job" opens it prefilled and
 * sends the run's exact spec: the keys the form does not show (`training.args`, ...) and every field left
 * as it was keep the run's value; above the form, whether the working tree still matches the run's lineage.
 */

import { EstimatePanel } from "./estimate.js";
import { h, replace } from "./html.js";
import { showWorktree } from "./lineage.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./api.js").ApiError} ApiError */
/** @typedef {import("./feed.js").Job} Job */

/** The task's column keys (DESIGN.md, "Column keys of [data] per task"). */
export const TASK_COLUMNS = {
  "text-classification": ["text_column", "text_pair_column", "label_column"],
  "token-classification": ["tokens_column", "tags_column", "format"],
  "question-answering": ["question_column", "context_column", "answers_column"],
  seq2seq: ["source_column", "target_column", "source_prefix"],
  "causal-lm": ["text_column", "prompt_column", "response_column"],
};

const SECTIONS = [
  { title: "Job", path: "", keys: ["name", "task", "model"], wide: ["model"] },
  { title: "Data (paths are relative to the project folder)", path: "data", keys: ["train", "eval", "eval_fraction", "max_length"], wide: ["train"] },
  { title: "Training", path: "training", keys: ["epochs", "max_steps", "batch_size", "eval_batch_size", "learning_rate",
    "warmup_ratio", "weight_decay", "precision", "logging_steps", "eval_strategy", "save_strategy", "seed"], wide: [] },
  { title: "Resources", path: "resources", keys: ["gpus", "executor"], wide: [] },
];
const LORA_KEYS = ["r", "alpha", "dropout"];

/**
 * @param {any} schema the whole JobSpec schema (for $defs)
 * @param {any} node
 * @returns {{node: any, nullable: boolean}}
 */
function resolve(schema, node) {
  let nullable = false;
  let n = node ?? {};
  if (Array.isArray(n.anyOf)) {
    nullable = n.anyOf.some((/** @type {any} */ b) => b.type === "null");
    const branches = n.anyOf.filter((/** @type {any} */ b) => b.type !== "null");
    n = branches.length === 1 ? { ...n, ...branches[0], anyOf: undefined } : { ...n, type: "mixed" };
  }
  if (n.$ref) n = { ...schema.$defs[n.$ref.split("/").pop()], ...n, $ref: undefined };
  return { node: n, nullable };
}

/**
 * The schema of the object at a dotted path ("" = the spec, "training").
 * @param {any} schema
 * @param {string} path
 */
function objectAt(schema, path) {
  let node = schema;
  for (const part of path ? path.split(".") : []) node = resolve(schema, node.properties?.[part]).node;
  return node;
}

/**
 * Convert an input's text to the JSON the server expects; text that is not a number stays text, so
 * the server names the problem.
 * @param {string} text
 * @param {any} prop
 */
export function parseInput(text, prop) {
  const t = text.trim();
  if (t === "") return undefined;
  if (prop.type === "integer" || prop.type === "number" || prop.type === "mixed") {
    const n = Number(t);
    return t !== "" && Number.isFinite(n) ? n : t;
  }
  return t;
}

/**
 * @param {Record<string, any>} obj
 * @param {string} dotted
 * @param {any} value undefined deletes
 */
function setPath(obj, dotted, value) {
  const parts = dotted.split(".");
  let node = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof node[p] !== "object" || node[p] === null) node[p] = {};
    node = node[p];
  }
  const last = /** @type {string} */ (parts.at(-1));
  if (value === undefined) delete node[last];
  else node[last] = value;
}

/** @param {Record<string, any>} obj @param {string} dotted */
function getPath(obj, dotted) {
  return dotted.split(".").reduce((/** @type {any} */ node, p) => (node == null ? undefined : node[p]), obj);
}

export class NewJobPage {
  /**
   * @param {HTMLElement} root
   * @param {{api: Api, onSubmitted: (job: Job) => void}} deps
   */
  constructor(root, deps) {
    this.root = root;
    this.deps = deps;
    /** @type {any} */
    this.schema = null;
    /** @type {Record<string, any>} */
    this.base = {};
    /** @type {Map<string, {input: HTMLInputElement|HTMLSelectElement, prop: any, initial: string|boolean}>} */
    this.inputs = new Map();
  }

  /** @param {Job|null} clone */
  async show(clone) {
    this.schema ??= await this.deps.api.schema();
    this.base = clone ? structuredClone(clone.spec ?? {}) : {};
    this.inputs.clear();
    const form = /** @type {HTMLFormElement} */ (h("form.form", { id: "new-job-form", novalidate: true }));
    const problems = h("div.form-problems", { id: "form-problems", role: "alert" });
    const submit = h("button.primary", { type: "submit", id: "submit-job" }, "Start job");
    const lora = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", id: "lora-on", checked: Boolean(this.base.lora) }));
    const loraFields = h("div.fields", { hidden: !this.base.lora }, LORA_KEYS.map((k) => this.field("lora", k, false)));
    lora.addEventListener("change", () => { loraFields.hidden = !lora.checked; });
    const columns = h("div.fields", { id: "column-fields" });
    replace(form,
      ...SECTIONS.map((s) => h("fieldset", null, h("legend", null, s.title),
        h("div.fields", null, s.keys.map((k) => this.field(s.path, k, s.wide.includes(k)))),
        s.path === "data" ? columns : null)),
      h("fieldset", null, h("legend", null, h("label", null, lora, " Train LoRA adapters (peft) instead of all weights")), loraFields),
      problems,
      h("div.form-actions", null, submit, h("a", { href: "#" }, "Cancel")));
    const task = /** @type {HTMLSelectElement} */ (this.inputs.get("task")?.input);
    const renderColumns = () => {
      for (const key of [...this.inputs.keys()]) if (key.startsWith("data.") && columns.querySelector(`[data-field="${key}"]`)) this.inputs.delete(key);
      const keys = TASK_COLUMNS[/** @type {keyof typeof TASK_COLUMNS} */ (task.value)] ?? [];
      replace(columns, keys.map((k) => this.field("data", k, false)));
    };
    task.addEventListener("change", renderColumns);
    renderColumns();
    const estimate = new EstimatePanel(this.deps.api);  // issue 16: will it fit, as the user edits
    const ask = () => estimate.update(() => this.spec(lora.checked));
    form.addEventListener("input", ask);
    form.addEventListener("change", ask);
    problems.before(estimate.root);
    ask();
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      await this.submit(form, problems, lora.checked, /** @type {HTMLButtonElement} */ (submit));
    });
    const worktree = clone ? h("div.worktree", { id: "clone-worktree" }, "Checking the working tree against the run's lineage…") : null;
    replace(this.root, h("h1", null, clone ? `New job from ${clone.name}` : "New job"), worktree, form);
    if (clone && worktree) void showWorktree(worktree, this.deps.api, clone.id);  // git and hashes: the form need not wait
  }

  /**
   * @param {string} path "" or a section key
   * @param {string} key
   * @param {boolean} wide
   */
  field(path, key, wide) {
    const dotted = path ? `${path}.${key}` : key;
    const { node: prop, nullable } = resolve(this.schema, objectAt(this.schema, path).properties?.[key]);
    const current = getPath(this.base, dotted);
    const name = prop.title ?? key;
    /** @type {HTMLInputElement|HTMLSelectElement} */
    let input;
    if (Array.isArray(prop.enum)) {
      input = /** @type {HTMLSelectElement} */ (h("select", { name: dotted, id: `f-${dotted}` },
        nullable ? h("option", { value: "" }, "(none)") : null,
        prop.enum.map((/** @type {string} */ v) => h("option", { value: v, selected: (current ?? prop.default) === v }, v))));
    } else if (prop.type === "boolean") {
      input = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", name: dotted, id: `f-${dotted}`, checked: Boolean(current ?? prop.default) }));
    } else {
      const numeric = prop.type === "integer" || prop.type === "number";
      input = /** @type {HTMLInputElement} */ (h("input", {
        type: "text", name: dotted, id: `f-${dotted}`, autocomplete: "off", inputmode: numeric ? "decimal" : null,
        value: current === undefined || current === null ? "" : String(current),
        placeholder: prop.default !== undefined && prop.default !== null && prop.default !== "" ? `default ${prop.default}` : (nullable ? "optional" : "required"),
      }));
    }
    this.inputs.set(dotted, { input, prop, initial: this.current(input) });
    return h(`label.field${wide ? ".wide" : ""}`, { "data-field": dotted, title: prop.description ?? "" },
      h("span", null, name, prop.description ? ` · ${prop.description}` : ""), input, h("span.problem"));
  }

  /** @param {HTMLInputElement|HTMLSelectElement} input */
  current(input) {
    return input instanceof HTMLInputElement && input.type === "checkbox" ? input.checked : input.value;
  }

  /**
   * The spec the form describes, over the cloned spec's other keys; a field left as it was keeps the
   * cloned value exactly (an empty input would otherwise drop a null, "1e-05" would stay text).
   * @param {boolean} withLora
   */
  spec(withLora) {
    const spec = structuredClone(this.base);
    for (const [dotted, { input, prop, initial }] of this.inputs) {
      if (dotted.startsWith("lora.") && !withLora) continue;
      if (this.current(input) === initial && getPath(this.base, dotted) !== undefined) continue;
      const value = input instanceof HTMLInputElement && input.type === "checkbox" ? input.checked : parseInput(input.value, prop);
      setPath(spec, dotted, value);
    }
    if (withLora) spec.lora ??= {};
    else if (spec.lora) delete spec.lora;
    return spec;
  }

  /**
   * @param {HTMLFormElement} form
   * @param {HTMLElement} problems
   * @param {boolean} withLora
   * @param {HTMLButtonElement} button
   */
  async submit(form, problems, withLora, button) {
    for (const f of form.querySelectorAll(".field.invalid")) f.classList.remove("invalid");
    for (const p of form.querySelectorAll(".field .problem")) p.textContent = "";
    replace(problems);
    button.disabled = true;
    try {
      const job = await this.deps.api.submit(this.spec(withLora));
      this.deps.onSubmitted(job);
    } catch (error) {
      const e = /** @type {ApiError} */ (error);
      /** @type {string[]} */
      const unplaced = [];
      for (const p of e.problems ?? []) {
        const field = p.field ? form.querySelector(`.field[data-field="${CSS.escape(p.field)}"]`) : null;
        if (field) {
          field.classList.add("invalid");
          /** @type {HTMLElement} */ (field.querySelector(".problem")).textContent = p.message;
        } else {
          unplaced.push(p.field ? `${p.field}: ${p.message}` : p.message);
        }
      }
      if (!e.problems?.length) unplaced.push(e.message);
      replace(problems, unplaced.map((t) => h("div", null, t)), e.hint && unplaced.length ? h("div.hint", null, e.hint) : null);
      /** @type {HTMLElement|null} */ (form.querySelector(".field.invalid input, .field.invalid select"))?.focus();
    } finally {
      button.disabled = false;
    }
  }
}
