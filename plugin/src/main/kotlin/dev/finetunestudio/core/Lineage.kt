package dev.finetunestudio.core

import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.annotations.JsonAdapter

// What a run came from, `GET /api/jobs/{id}/lineage` (issue 16); mirrors `Lineage` in
// backend/finetune_studio/lineage.py (the fields the diff viewer shows).

data class Lineage(
    val jobId: String = "",
    @field:JsonAdapter(JsonObjectAdapter::class) val spec: JsonObject? = null,
    /** An attached run's TrainingArguments. */
    val trainingArgs: Map<String, Any?>? = null,
    val code: CodeState? = null,
    val data: List<DataFileState> = emptyList(),
    /** Library versions (torch, transformers, ...); null: not installed. */
    val environment: Map<String, String?> = emptyMap(),
)

data class CodeState(
    val folder: String = "",
    /** The git work tree's top folder; null: not a repository. */
    val repository: String? = null,
    val commit: String? = null,
    val branch: String? = null,
    /** The uncommitted diff of tracked files under the folder (a unified diff), empty when clean. */
    val diff: String = "",
    val note: String? = null,
)

data class DataFileState(
    /** data.train or data.eval */
    val field: String = "",
    val path: String = "",
    val size: Long? = null,
    val mtime: Double? = null,
    val rows: Long? = null,
    val sha256: String? = null,
)

/**
 * Two runs side by side as texts for the IDE's diff viewer: the spec as sorted `key = value` lines (so
 * that a changed value is one changed line), the code as its commit and uncommitted diff, the data and
 * versions as one line each.
 */
object RunDiff {
    fun title(job: Job): String = "${job.name.ifEmpty { job.task }} (${job.id})"

    /** The lineage's spec, else the job's (managed), else an attached run's TrainingArguments. */
    fun specText(job: Job, lineage: Lineage?): String {
        // Gson reads every JSON number of a Map<String, Any?> as a Double: show 1 as 1, as Python does
        val args = (lineage?.trainingArgs ?: job.trainingArgs).orEmpty().mapValues { (_, v) -> if (v is Double && v % 1.0 == 0.0 && kotlin.math.abs(v) < 1e15) v.toLong() else v }
        val spec = lineage?.spec ?: job.spec ?: StudioJson.toTree(args).asJsonObject
        val lines = mutableListOf<String>()
        flatten("", spec, lines)
        return lines.sorted().joinToString("\n", postfix = "\n")
    }

    fun codeText(lineage: Lineage?): String {
        val code = lineage?.code ?: return "(no code state recorded for this run)\n"
        if (code.repository == null) return "${code.folder}: not a git repository" + (code.note?.let { " ($it)" } ?: "") + "\n"
        return buildString {
            append("commit ").append(code.commit ?: "(none)")
            code.branch?.let { append(" (").append(it).append(')') }
            append('\n')
            val diff = code.diff
            if (diff.isBlank()) append("(no uncommitted changes)\n") else append('\n').append(diff.trimEnd()).append('\n')
        }
    }

    fun environmentText(lineage: Lineage?): String {
        if (lineage == null) return "(no lineage recorded for this run)\n"
        val lines = lineage.data.map { file ->
            "${file.field.ifEmpty { "data" }} ${file.path}: ${file.rows ?: "?"} rows, ${file.size ?: "?"} bytes, sha256 ${file.sha256 ?: "?"}"
        } + lineage.environment.toSortedMap().map { (name, version) -> "$name ${version ?: "(not installed)"}" }
        return lines.joinToString("\n", postfix = "\n")
    }

    private fun flatten(prefix: String, element: JsonElement, out: MutableList<String>) {
        if (element is JsonObject && (element.size() > 0 || prefix.isEmpty())) {
            for ((key, child) in element.entrySet()) flatten(if (prefix.isEmpty()) key else "$prefix.$key", child, out)
        } else {
            out += "$prefix = $element"
        }
    }
}
