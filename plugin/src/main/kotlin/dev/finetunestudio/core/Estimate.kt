package dev.finetunestudio.core

import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive
import java.nio.file.Path
import java.util.Locale

/**
 * The answer of `POST /api/estimate` (issue 16): will the spec fit, and how long an epoch takes.
 * Coded against the minimal shape agreed before the endpoint existed ({fits, warning, suggestion, ...});
 * the other fields are read when present, so a server without them still gives a banner.
 */
data class Estimate(
    val fits: Boolean = true,
    /** Why it will not fit (or another caution), in the server's words. */
    val warning: String? = null,
    /** The setting that would make it fit, e.g. "batch_size = 8". */
    val suggestion: String? = null,
    /** Peak memory the job needs, and what the device has (MB). */
    val memoryMb: Double? = null,
    val deviceMemoryMb: Double? = null,
    val device: String? = null,
    val secondsPerEpoch: Double? = null,
)

/** The parts of an estimate's banner, formatted; the IDE puts them into its own sentences. */
data class EstimateSummary(val fits: Boolean, val memory: String?, val timePerEpoch: String?, val warning: String?, val suggestion: String?) {
    companion object {
        fun of(estimate: Estimate): EstimateSummary {
            val memory = estimate.memoryMb?.let { need ->
                val device = estimate.device?.let { " on $it" }.orEmpty()
                gigabytes(need) + (estimate.deviceMemoryMb?.let { " of ${gigabytes(it)}" } ?: "") + device
            }
            val time = estimate.secondsPerEpoch?.takeIf { it.isFinite() && it >= 0 }?.let(ConsoleLines::duration)
            return EstimateSummary(estimate.fits, memory, time, estimate.warning?.ifBlank { null }, estimate.suggestion?.ifBlank { null })
        }

        fun gigabytes(mb: Double): String = String.format(Locale.ROOT, if (mb < 10 * 1024) "%.1f GB" else "%.0f GB", mb / 1024)
    }
}

/**
 * A job spec as JSON built from `finetune.toml`'s entries (key path → value, as the editor parsed them),
 * for the requests that take a spec (`/api/estimate`), with relative paths resolved against the TOML's
 * folder as spec.py's `parse_spec` does: the server would resolve them against its project folder instead.
 */
object SpecJson {
    fun of(entries: List<Pair<List<String>, SpecValue>>, baseDir: Path): JsonObject {
        val root = JsonObject()
        for ((path, value) in entries) {
            if (path.isEmpty()) continue
            var table = root
            for (key in path.dropLast(1)) {
                val child = table.get(key)
                table = if (child is JsonObject) child else JsonObject().also { table.add(key, it) }
            }
            if (value == SpecValue.Table) {
                if (table.get(path.last()) !is JsonObject) table.add(path.last(), JsonObject())
            } else {
                table.add(path.last(), json(value))
            }
        }
        resolvePaths(root, baseDir)
        return root
    }

    fun json(value: SpecValue): JsonElement = when (value) {
        is SpecValue.Text -> JsonPrimitive(value.value)
        is SpecValue.Integer -> JsonPrimitive(value.value)
        // JSON has no NaN or infinity: send the text, which the server refuses by name
        is SpecValue.Decimal -> if (value.value.isFinite()) JsonPrimitive(value.value) else JsonPrimitive(value.text)
        is SpecValue.Bool -> JsonPrimitive(value.value)
        is SpecValue.Array -> JsonArray().also { array -> value.items.forEach { array.add(json(it)) } }
        SpecValue.Table -> JsonObject()
        SpecValue.DateTime -> JsonPrimitive("datetime")
    }

    private fun resolvePaths(spec: JsonObject, baseDir: Path) {
        val data = spec.get("data") as? JsonObject
        for (key in listOf("train", "eval")) {
            val value = data?.get(key)?.takeIf { it.isJsonPrimitive && it.asJsonPrimitive.isString } ?: continue
            data.addProperty(key, SpecPaths.resolved(value.asString, baseDir).toString())
        }
        val model = spec.get("model")?.takeIf { it.isJsonPrimitive && it.asJsonPrimitive.isString }?.asString ?: return
        if (SpecPaths.isModelPath(model, baseDir)) spec.addProperty("model", SpecPaths.resolved(model, baseDir).toString())
    }
}
