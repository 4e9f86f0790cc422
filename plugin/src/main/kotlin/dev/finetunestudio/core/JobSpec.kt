package dev.finetunestudio.core

import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive

// Mirrors backend/finetune_studio/spec.py (JobSpec and its sections); defaults are the Python ones.
// The plugin submits specs as JsonObject (what `load_spec` printed, plus overrides) so that a field added on
// the Python side passes through untouched; these classes are the typed view for reading and for tests.

data class JobSpec(
    val name: String = "",
    /** text-classification | token-classification | question-answering | seq2seq | causal-lm */
    val task: String = "text-classification",
    val model: String = "",
    val data: DataSpec = DataSpec(),
    val training: TrainingSpec = TrainingSpec(),
    val lora: LoraSpec? = null,
    val resources: ResourcesSpec = ResourcesSpec(),
    val debug: DebugSpec = DebugSpec(),
)

data class DataSpec(
    val train: String = "",
    val eval: String? = null,
    val evalFraction: Double? = null,
    val format: String = "auto",
    val maxLength: Int = 256,
    val textColumn: String = "text",
    val textPairColumn: String? = null,
    val labelColumn: String = "label",
    val tokensColumn: String = "tokens",
    val tagsColumn: String = "tags",
    val questionColumn: String = "question",
    val contextColumn: String = "context",
    val answersColumn: String = "answers",
    val docStride: Int = 128,
    val sourceColumn: String = "source",
    val targetColumn: String = "target",
    val sourcePrefix: String = "",
    val promptColumn: String? = null,
    val responseColumn: String? = null,
    val trainOnPrompt: Boolean = false,
    val packing: Boolean = false,
)

data class TrainingSpec(
    val epochs: Double = 3.0,
    val maxSteps: Int? = null,
    val batchSize: Int = 16,
    val evalBatchSize: Int = 64,
    val gradientAccumulationSteps: Int = 1,
    val learningRate: Double = 2e-5,
    val warmupSteps: Int? = null,
    val warmupRatio: Double? = null,
    val weightDecay: Double = 0.01,
    val lrSchedulerType: String = "linear",
    /** auto | fp32 | bf16 | fp16 */
    val precision: String = "auto",
    val seed: Int = 42,
    val loggingSteps: Int = 10,
    val evalStrategy: String = "epoch",
    val evalSteps: Int? = null,
    val saveStrategy: String = "epoch",
    val saveSteps: Int? = null,
    val saveTotalLimit: Int? = 2,
    val gradientCheckpointing: Boolean = false,
    /** Any other TrainingArguments, passed through unchanged. */
    val args: JsonObject = JsonObject(),
)

data class LoraSpec(
    val r: Int = 8,
    val alpha: Int = 16,
    val dropout: Double = 0.05,
    val targetModules: List<String>? = null,
    val merge: Boolean = false,
    val quantize: String? = null,
)

data class ResourcesSpec(
    /** A count, or the string "all" (so it stays a JSON primitive). */
    val gpus: JsonPrimitive = JsonPrimitive(1),
    /** CPU processes (DDP with gloo) on a machine without GPUs. */
    val processes: Int = 1,
    /** local | ray */
    val executor: String = "local",
    val rayAddress: String? = null,
)

/** What stops training when it goes wrong (issue 15; `anomaly.py`). */
data class DebugSpec(
    /** Any of nan, spike, grad_spike. */
    val breakOn: List<String> = emptyList(),
    /** continue | stop (without a debugger attached) */
    val onAnomaly: String = "continue",
    val spikeZ: Double = 8.0,
    val gradZ: Double = 8.0,
    val window: Int = 50,
)

/**
 * The hyper-parameters a run configuration may override over its `finetune.toml`, as typed in its form:
 * blank means "keep the file's value". [parse] turns the text into numbers or names what is wrong.
 */
data class SpecOverrides(
    val epochs: String? = null,
    val batchSize: String? = null,
    val learningRate: String? = null,
    val maxSteps: String? = null,
) {
    /** Problems as "field: message", empty when every given value is valid. */
    fun problems(): List<String> = parsed().second

    /** Writes the given values into [spec]'s `training` section (creating it when absent). */
    fun applyTo(spec: JsonObject): JsonObject {
        val (values, problems) = parsed()
        require(problems.isEmpty()) { problems.joinToString("; ") }
        if (values.isEmpty()) return spec
        val training = spec.getAsJsonObject("training") ?: JsonObject().also { spec.add("training", it) }
        for ((key, value) in values) training.addProperty(key, value)
        return spec
    }

    private fun parsed(): Pair<Map<String, Number>, List<String>> {
        val values = linkedMapOf<String, Number>()
        val problems = mutableListOf<String>()
        fun positive(key: String, text: String?, parse: (String) -> Number?) {
            val trimmed = text?.trim().orEmpty()
            if (trimmed.isEmpty()) return
            val number = parse(trimmed)
            if (number == null || number.toDouble() <= 0.0 || number.toDouble().isNaN()) {
                problems += "$key: expected a positive number, got '$trimmed'"
            } else {
                values[key] = number
            }
        }
        positive("epochs", epochs) { it.toDoubleOrNull() }
        positive("batch_size", batchSize) { it.toIntOrNull() }
        positive("learning_rate", learningRate) { it.toDoubleOrNull() }
        positive("max_steps", maxSteps) { it.toIntOrNull() }
        (values["learning_rate"] as Double?)?.let {
            if (it >= 1.0) problems += "learning_rate: expected a value below 1, got $it"
        }
        return values to problems
    }
}

/** The job config files: `finetune.toml`, or any `<name>.finetune.toml`. */
object JobConfigFiles {
    const val DEFAULT_NAME = "finetune.toml"
    private const val SUFFIX = ".finetune.toml"

    fun isJobConfig(fileName: String): Boolean = fileName == DEFAULT_NAME || (fileName.endsWith(SUFFIX) && fileName.length > SUFFIX.length)

    /** A run configuration's name for a config file: its folder's for `finetune.toml`, else the file's stem. */
    fun runName(fileName: String, folderName: String?): String =
        if (fileName == DEFAULT_NAME) folderName?.takeIf { it.isNotEmpty() } ?: "finetune" else fileName.removeSuffix(SUFFIX)
}
