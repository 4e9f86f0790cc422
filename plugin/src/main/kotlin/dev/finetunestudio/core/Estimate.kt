package dev.finetunestudio.core

import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive
import com.google.gson.annotations.JsonAdapter
import java.nio.file.Path
import java.util.Locale

/**
 * The answer of `POST /api/estimate` (issue 16; mirrors `Estimate` in backend/finetune_studio/wire/estimate.py,
 * checked by WireContractTest): will the spec fit, on which device, how long an epoch takes. Sizes in bytes.
 */
data class Estimate(
    val architecture: String = "",
    val parameters: Long = 0,
    val trainableParameters: Long = 0,
    /** fp32 | bf16 | fp16 */
    val precision: String = "fp32",
    val batchSize: Int = 0,
    /** Tokens of the longest example (capped at data.max_length). */
    val sequenceLength: Int = 0,
    val memory: MemoryEstimate? = null,
    val devices: List<DeviceFit> = emptyList(),
    val fits: Boolean = true,
    val maxBatchSize: Int? = null,
    val examples: Long? = null,
    val tokensPerEpoch: Long? = null,
    val stepsPerEpoch: Long? = null,
    /** Training and the epoch's evaluations. */
    val secondsPerEpoch: Double? = null,
    val secondsTotal: Double? = null,
    /** Why it will not fit, in the server's words. */
    val warning: String? = null,
    /** The setting that would make it fit, e.g. "training.batch_size = 8, ...". */
    val suggestion: String? = null,
    /** The settings of the suggestion: dotted spec key -> value. */
    @field:JsonAdapter(JsonObjectAdapter::class) val suggested: JsonObject = JsonObject(),
    val notes: List<String> = emptyList(),
)

/** Bytes at the peak: weights + optimizer + runtime + max(gradients + activations, evaluation). */
data class MemoryEstimate(
    val weights: Long = 0,
    val gradients: Long = 0,
    val optimizer: Long = 0,
    val activations: Long = 0,
    /** An evaluation step at eval_batch_size and the predictions kept for the metrics; 0 without evaluation. */
    val evaluation: Long = 0,
    val runtime: Long = 0,
    val total: Long = 0,
)

data class DeviceFit(
    val name: String = "",
    /** cuda | cpu | mps */
    val kind: String = "cpu",
    val index: Int? = null,
    /** Bytes the job may use: the GPU's memory, or the RAM available now. */
    val memory: Long = 0,
    val fits: Boolean = false,
    val maxBatchSize: Int = 0,
)

/** The parts of an estimate's banner, formatted; the IDE puts them into its own sentences. */
data class EstimateSummary(val fits: Boolean, val memory: String?, val timePerEpoch: String?, val warning: String?, val suggestion: String?) {
    companion object {
        fun of(estimate: Estimate): EstimateSummary {
            // the device the job would get: a GPU when there is one
            val device = estimate.devices.firstOrNull { it.kind != "cpu" } ?: estimate.devices.firstOrNull()
            val memory = estimate.memory?.total?.takeIf { it > 0 }?.let { need ->
                gigabytes(need) + (device?.let { " of ${gigabytes(it.memory)} on ${it.name}" } ?: "")
            }
            val time = estimate.secondsPerEpoch?.takeIf { it.isFinite() && it >= 0 }?.let(ConsoleLines::duration)
            return EstimateSummary(estimate.fits, memory, time, estimate.warning?.ifBlank { null }, estimate.suggestion?.ifBlank { null })
        }

        fun gigabytes(bytes: Long): String {
            val gb = bytes / (1024.0 * 1024 * 1024)
            return String.format(Locale.ROOT, if (gb < 10) "%.1f GB" else "%.0f GB", gb)
        }
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
