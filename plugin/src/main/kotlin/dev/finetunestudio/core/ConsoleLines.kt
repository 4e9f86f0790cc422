package dev.finetunestudio.core

import java.util.Locale

/** One line for a run console; [isError] lines go to stderr (shown red), [isSystem] ones in the system colour. */
data class ConsoleLine(val text: String, val isError: Boolean = false, val isSystem: Boolean = false)

/**
 * How a job's stream reads in a Run console: log lines as the worker wrote them, a short line per metric,
 * evaluation and progress event, and the state changes with the error and its hint. Pure, so that the
 * console and `FollowJobMain` print the same thing.
 */
object ConsoleLines {
    fun of(event: StreamEvent): ConsoleLine? = when (event.type) {
        EventType.LOG -> event.log().let { ConsoleLine(it.text, isError = it.stream == "stderr") }
        EventType.METRIC -> event.metric().let { ConsoleLine("step ${it.step}  ${values(it.values)}") }
        EventType.EVAL -> event.eval().let { ConsoleLine("eval @ step ${it.step}  ${values(it.values)}") }
        EventType.PROGRESS -> ConsoleLine(progress(event.progress()), isSystem = true)
        EventType.STATE -> state(event.job())
        EventType.ANOMALY -> event.anomaly().let { a ->
            ConsoleLine("anomaly (${a.kind}): ${a.message()}" + (a.savedTo?.let { "\nbatch saved to $it" } ?: ""), isError = true)
        }
        else -> null // system samples are for the dashboard's charts
    }

    fun state(job: Job): ConsoleLine {
        val text = buildString {
            append("job ").append(job.name.ifEmpty { job.id }).append(" is ").append(job.state)
            if (job.state == JobState.RUNNING && job.device != null) append(" on ").append(job.device)
            val error = job.error
            if (error != null) {
                append(": ").append(error.message)
                if (!error.hint.isNullOrBlank()) append("\nhint: ").append(error.hint)
            }
            if (job.state == JobState.COMPLETED && job.outputDir.isNotEmpty()) append("; model saved in ").append(job.outputDir)
        }
        return ConsoleLine(text, isError = job.state == JobState.FAILED, isSystem = job.state != JobState.FAILED)
    }

    fun progress(p: Progress): String = buildString {
        val fraction = p.fraction
        if (fraction != null) append(String.format(Locale.ROOT, "[%3d%%] ", (fraction * 100).toInt()))
        append("step ").append(p.step)
        if (p.maxSteps > 0) append('/').append(p.maxSteps)
        append(String.format(Locale.ROOT, "  epoch %.2f", p.epoch))
        p.samplesPerSecond?.let { append(String.format(Locale.ROOT, "  %.1f samples/s", it)) }
        p.etaSeconds?.let { append("  ETA ").append(duration(it)) }
    }

    fun duration(seconds: Double): String {
        val total = seconds.toLong().coerceAtLeast(0)
        val h = total / 3600
        val m = total % 3600 / 60
        val s = total % 60
        return when {
            h > 0 -> "${h}h%02dm".format(m)
            m > 0 -> "${m}m%02ds".format(s)
            else -> "${s}s"
        }
    }

    private fun values(values: Map<String, Double?>): String =
        values.entries.joinToString("  ") { (name, value) -> "$name=${number(value)}" }

    /** Four significant digits, like the Trainer's own logs; null stands for NaN/inf, which JSON cannot carry. */
    fun number(value: Double?): String = when {
        value == null -> "nan"
        value == 0.0 -> "0"
        kotlin.math.abs(value) >= 1e-3 && kotlin.math.abs(value) < 1e5 ->
            String.format(Locale.ROOT, "%.4g", value).let { if ('e' in it) it else it.trimEnd('0').trimEnd('.') }
        else -> String.format(Locale.ROOT, "%.3e", value)
    }
}
