package dev.finetunestudio.core

import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.annotations.JsonAdapter

// What a run came from, `GET /api/jobs/{id}/lineage` (issue 16). Coded before the endpoint existed, against
// the fields the issue names: the spec, the git commit and uncommitted diff, the data files, the versions.

data class Lineage(
    @field:JsonAdapter(JsonObjectAdapter::class) val spec: JsonObject? = null,
    val git: GitState? = null,
    val data: List<DataFileState> = emptyList(),
    val versions: Map<String, String?> = emptyMap(),
)

data class GitState(
    val commit: String? = null,
    /** The uncommitted diff of the files under the spec's folder (a unified diff), empty when clean. */
    val diff: String? = null,
)

data class DataFileState(
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
        val args = job.trainingArgs.orEmpty().mapValues { (_, v) -> if (v is Double && v % 1.0 == 0.0 && kotlin.math.abs(v) < 1e15) v.toLong() else v }
        val spec = lineage?.spec ?: job.spec ?: StudioJson.toTree(args).asJsonObject
        val lines = mutableListOf<String>()
        flatten("", spec, lines)
        return lines.sorted().joinToString("\n", postfix = "\n")
    }

    fun codeText(lineage: Lineage?): String {
        val git = lineage?.git ?: return "(no git repository recorded for this run)\n"
        return buildString {
            append("commit ").append(git.commit ?: "(none)").append('\n')
            val diff = git.diff.orEmpty()
            if (diff.isBlank()) append("(no uncommitted changes)\n") else append('\n').append(diff.trimEnd()).append('\n')
        }
    }

    fun environmentText(lineage: Lineage?): String {
        if (lineage == null) return "(no lineage recorded for this run)\n"
        val lines = lineage.data.map { file ->
            "data ${file.path}: ${file.rows ?: "?"} rows, ${file.size ?: "?"} bytes, sha256 ${file.sha256 ?: "?"}"
        } + lineage.versions.toSortedMap().map { (name, version) -> "$name ${version ?: "(not installed)"}" }
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
