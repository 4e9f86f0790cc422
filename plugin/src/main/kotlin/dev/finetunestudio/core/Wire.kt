package dev.finetunestudio.core

import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.annotations.JsonAdapter

// Mirrors backend/finetune_studio/wire/, one class per pydantic model. Gson maps camelCase to the
// snake_case JSON names (see StudioJson), so no field needs an annotation. Every constructor parameter has
// a default: Kotlin then generates a no-arg constructor, which Gson uses, so a field missing from the JSON
// keeps its default instead of becoming a null in a non-null property.
// Times are UNIX seconds; non-finite floats arrive as null.

/** The job states, the same strings as the Python `JobState`. */
object JobState {
    const val QUEUED = "queued"
    const val RUNNING = "running"
    const val CANCELLING = "cancelling"
    const val COMPLETED = "completed"
    const val FAILED = "failed"
    const val CANCELLED = "cancelled"
    const val INTERRUPTED = "interrupted"

    val FINISHED: Set<String> = setOf(COMPLETED, FAILED, CANCELLED, INTERRUPTED)
    val RESUMABLE: Set<String> = setOf(FAILED, CANCELLED, INTERRUPTED)

    fun isFinished(state: String?): Boolean = state in FINISHED

    /** The exit code a run console shows for a job that ended in [state]: non-zero unless it completed. */
    fun exitCode(state: String?): Int = when (state) {
        COMPLETED -> 0
        CANCELLED -> 130 // what a shell reports for a run stopped with Ctrl+C
        INTERRUPTED -> 2
        else -> 1
    }
}

/** The event types of a job's stream, the same strings as the Python `EventType`. */
object EventType {
    const val METRIC = "metric"
    const val PROGRESS = "progress"
    const val EVAL = "eval"
    const val SYSTEM = "system"
    const val LOG = "log"
    const val STATE = "state"
    /** An attached run's last word: {state, error?}. */
    const val END = "end"
    /** A detector fired (issue 15): data is an [Anomaly]. */
    const val ANOMALY = "anomaly"
}

data class Progress(
    val step: Int = 0,
    val maxSteps: Int = 0,
    val epoch: Double = 0.0,
    val samplesPerSecond: Double? = null,
    val etaSeconds: Double? = null,
) {
    /** 0..1, or null while the trainer has not said how many steps there will be. */
    val fraction: Double? get() = if (maxSteps > 0) step.toDouble() / maxSteps else null
}

data class JobError(
    val type: String = "",
    val message: String = "",
    val hint: String? = null,
)

data class Job(
    val id: String = "",
    val name: String = "",
    val task: String = "",
    val kind: String = "managed",
    val state: String = JobState.QUEUED,
    val attempt: Int = 1,
    val createdAt: Double = 0.0,
    val startedAt: Double? = null,
    val finishedAt: Double? = null,
    val progress: Progress = Progress(),
    val device: String? = null,
    val outputDir: String = "",
    val error: JobError? = null,
    val bestMetric: Map<String, Double>? = null,
    /** What a managed job runs (a JobSpec); null for an attached run. */
    @field:JsonAdapter(JsonObjectAdapter::class) val spec: JsonObject? = null,
    /** An attached run's TrainingArguments (scalars: String, Double, Boolean or null); null for managed jobs. */
    val trainingArgs: Map<String, Any?>? = null,
) {
    val isFinished: Boolean get() = JobState.isFinished(state)
}

data class JobList(val jobs: List<Job> = emptyList())

data class Series(
    val step: List<Int> = emptyList(),
    val value: List<Double?> = emptyList(),
    val time: List<Double> = emptyList(),
)

data class Metrics(
    val series: Map<String, Series> = emptyMap(),
    val totalPoints: Map<String, Int> = emptyMap(),
    /** The job's last event seq when the series were read: follow the stream with `?after=lastSeq`. */
    val lastSeq: Long = 0,
)

data class LogLine(
    val seq: Long = 0,
    val time: Double = 0.0,
    /** "stdout" or "stderr". */
    val stream: String = "stdout",
    val text: String = "",
)

data class Logs(val lines: List<LogLine> = emptyList())

/** One event of a job's SSE stream; [seq] is the SSE id, [data]'s shape depends on [type] (see the accessors). */
data class StreamEvent(
    val seq: Long = 0,
    val type: String = "",
    val time: Double = 0.0,
    val data: JsonObject = JsonObject(),
) {
    fun metric(): MetricPoint = StudioJson.fromTree(data, MetricPoint::class.java)
    fun progress(): Progress = StudioJson.fromTree(data, Progress::class.java)
    fun eval(): EvalPoint = StudioJson.fromTree(data, EvalPoint::class.java)
    fun system(): SystemPoint = StudioJson.fromTree(data, SystemPoint::class.java)
    fun log(): LogLine = StudioJson.fromTree(data, LogLine::class.java)
    fun anomaly(): Anomaly = StudioJson.fromTree(data, Anomaly::class.java)
    /** A `state` event carries the whole Job. */
    fun job(): Job = StudioJson.fromTree(data, Job::class.java)
}

/** `GET /api/jobs/{id}/events?types=`: a job's stored events, oldest first. */
data class EventList(val events: List<StreamEvent> = emptyList())

// The payloads of StreamEvent.data, as the docstring of the Python StreamEvent describes them.
data class MetricPoint(val step: Int = 0, val values: Map<String, Double?> = emptyMap())

data class EvalPoint(
    val step: Int = 0,
    val values: Map<String, Double?> = emptyMap(),
    /** Predictions next to their references, for the tasks that show some. */
    val samples: List<EvalSample>? = null,
    val confusionMatrix: List<List<Long>>? = null,
    val labels: List<String>? = null,
)

/**
 * What a detector saw (mirrors `Anomaly.to_event()` in backend/finetune_studio/anomaly.py): [kind] is
 * `nan`, `spike` or `grad_spike`; [step] the optimizer step (1-based, as `/steps/{step}/batch` counts);
 * [rows] the training file's rows in the batch; [savedTo] where the batch was saved when no debugger stopped.
 */
data class Anomaly(
    val kind: String = "",
    val step: Int = 0,
    /** null: not a finite number. */
    val value: Double? = null,
    val threshold: Double? = null,
    val detail: String = "",
    val rows: List<Int> = emptyList(),
    val savedTo: String? = null,
) {
    /** The same sentence as the Python `Anomaly.message()`. */
    fun message(): String {
        val shown = rows.take(20).joinToString(", ") + if (rows.size > 20) " ..." else ""
        return "$detail at step $step; the batch holds training rows [$shown]"
    }
}

data class SystemPoint(val values: Map<String, Double?> = emptyMap())

/** What a reporter sends; [seq] counts per attempt from 1. */
data class ReporterEvent(
    val seq: Long = 1,
    val type: String = EventType.METRIC,
    val time: Double = 0.0,
    val data: JsonObject = JsonObject(),
)

data class IngestBatch(val attempt: Int = 1, val events: List<ReporterEvent> = emptyList())

data class IngestResult(val accepted: Int = 0, val duplicates: Int = 0)

/** Opens an attached run: a user's own script reporting through StudioCallback. */
data class RunCreate(
    val name: String = "attached run",
    val task: String = "custom",
    val outputDir: String = "",
    /** The script's TrainingArguments (scalar values). */
    val trainingArgs: Map<String, Any?> = emptyMap(),
    /** The script's process: if it dies, the server marks the run interrupted. */
    val pid: Long? = null,
    /** Where it trains: cpu, cuda:0, mps... */
    val device: String? = null,
    /** `finetune-studio train`: the job spec the run trains in-process. */
    @field:JsonAdapter(JsonObjectAdapter::class) val spec: JsonObject? = null,
)

/** One problem of a refused request: `field` is dotted (`training.learning_rate`). */
data class Problem(val loc: List<Any> = emptyList(), val field: String = "", val msg: String = "", val type: String? = null)

/** Every error answer of the API: [detail] is a message, or (422) a list of [Problem]s. */
data class ErrorBody(val detail: JsonElement? = null, val type: String = "", val hint: String? = null)

/** [pid] is the server's process: discovery checks it against server.json's. */
data class Health(val status: String = "", val version: String = "", val pid: Long = 0)

data class Device(
    val index: Int? = null,
    /** "cuda", "cpu" or "mps". */
    val kind: String = "cpu",
    val name: String = "",
    val memoryTotalMb: Double? = null,
    val memoryUsedMb: Double? = null,
    val utilization: Double? = null,
    val busyJob: String? = null,
)

data class SystemInfo(val devices: List<Device> = emptyList(), val versions: Map<String, String> = emptyMap())

data class BatchExample(
    /** Row of the training file. */
    val index: Int = 0,
    val text: String = "",
    val label: String? = null,
    val tokens: Int = 0,
)

/** The training examples that formed one optimizer step, longest first. */
data class StepBatch(val step: Int = 0, val examples: List<BatchExample> = emptyList())

/** One prediction of an evaluation next to its reference, as text (label, entities, answer, translation...). */
data class EvalSample(val input: String = "", val prediction: String = "", val reference: String = "")

/** The content of `server.json`. */
data class ServerInfo(
    val url: String = "",
    val token: String = "",
    val pid: Long = 0,
    val version: String = "",
)
