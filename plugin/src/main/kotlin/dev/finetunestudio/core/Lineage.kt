package dev.finetunestudio.core

import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.annotations.JsonAdapter

// What a run came from, `GET /api/jobs/{id}/lineage`, what changed between two runs and since a run
// (issue 16); mirrors the lineage models of backend/finetune_studio/wire/lineage.py (fixtures in WireContractTest).

data class Lineage(
    val jobId: String = "",
    val recordedAt: Double = 0.0,
    @field:JsonAdapter(JsonObjectAdapter::class) val spec: JsonObject? = null,
    /** An attached run's TrainingArguments. */
    val trainingArgs: Map<String, Any?>? = null,
    /** An attached run's script. */
    val script: String? = null,
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
    /** Each changed or untracked file (path in the repository) -> its text; null: deleted, binary or too large. */
    val files: Map<String, String?> = emptyMap(),
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

data class ValueChange(val key: String = "", val a: Any? = null, val b: Any? = null)

/** One file's change as a unified diff. */
data class FileChange(val path: String = "", val diff: String = "")

data class RowChange(
    /** 1-based row of b's file (a's for a removed row). */
    val row: Long = 0,
    val a: String? = null,
    val b: String? = null,
)

/** A data file that differs: [a] then (or run a's), [b] now (or run b's); null: no such file. */
data class DataChange(
    val field: String = "",
    val a: DataFileState? = null,
    val b: DataFileState? = null,
    val changedRows: List<Long> = emptyList(),
    val addedRows: Long = 0,
    val removedRows: Long = 0,
    val rows: List<RowChange> = emptyList(),
    val note: String? = null,
)

/** `GET /api/jobs/{a}/lineage/diff/{b}`. */
data class LineageDiff(
    val a: String = "",
    val b: String = "",
    val spec: List<ValueChange> = emptyList(),
    val code: List<FileChange> = emptyList(),
    val codeNote: String? = null,
    val data: List<DataChange> = emptyList(),
    val environment: List<ValueChange> = emptyList(),
)

/**
 * `GET /api/jobs/{id}/lineage/worktree`: whether the working tree still holds what a run came from, asked
 * before "Clone as new job" (the dashboard's `#new=<id>` form sends the run's exact spec).
 */
data class WorktreeCheck(
    val jobId: String = "",
    /** true: same commit, files and data; false: something differs (listed); null: the code cannot be compared. */
    val matches: Boolean? = null,
    val folder: String? = null,
    val repository: String? = null,
    val commitThen: String? = null,
    val commitNow: String? = null,
    val changedFiles: List<FileChange> = emptyList(),
    val dataChanged: List<DataChange> = emptyList(),
    val note: String? = null,
) {
    /** One line for a notification or a status text: the verdict and what differs. */
    fun summary(): String {
        val differences = buildList {
            if (commitThen != commitNow && commitThen != null) add("commit ${commitThen.take(10)} then, ${commitNow?.take(10) ?: "none"} now")
            if (changedFiles.isNotEmpty()) add("files changed since: " + changedFiles.joinToString(", ") { it.path })
            if (dataChanged.isNotEmpty()) add("data changed: " + dataChanged.joinToString(", ") { "${it.field} (${it.a?.path ?: it.b?.path})" })
        }
        val verdict = when (matches) {
            true -> "The working tree matches the run's lineage"
            false -> "The working tree differs from the run's lineage"
            null -> "Cannot tell whether the working tree matches the run's lineage"
        }
        return (listOf(verdict) + differences + listOfNotNull(note)).joinToString("; ")
    }
}

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
