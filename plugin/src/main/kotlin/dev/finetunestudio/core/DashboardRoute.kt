package dev.finetunestudio.core

import java.net.URLEncoder
import java.nio.charset.StandardCharsets

/**
 * The dashboard's views as URL fragments, the plugin's side of `dashboard/route.js` (`parseRoute`), which
 * reads them with `URLSearchParams`.
 */
object DashboardRoute {
    fun job(id: String): String = "job=${enc(id)}"

    /**
     * A job at one optimizer step, where its anomaly's batch is: `job=<id>&step=<step>`. A dashboard
     * that does not know `step` yet opens the job.
     */
    fun batch(id: String, step: Int): String = "job=${enc(id)}&step=$step"

    /** The new-job form filled with the run's exact spec, and whether the working tree still matches it. */
    fun cloneJob(id: String): String = "new=${enc(id)}"

    fun compare(ids: List<String>): String = "compare=" + ids.joinToString(",") { enc(it) }

    /** encodeURIComponent's output for ids (URLEncoder writes a space as '+', which URLSearchParams also reads as a space). */
    private fun enc(text: String): String = URLEncoder.encode(text, StandardCharsets.UTF_8).replace("+", "%20")
}

/**
 * Which `anomaly` events of followed jobs deserve a notification: each once (by job and seq, however often
 * a reconnect replays it), and none older than [since] (a job already running when the IDE started
 * following it replays its earlier events; those were announced, or missed, before).
 */
class AnomalyAlerts(private val since: Double) {
    private val seen = HashSet<String>()

    /** The anomaly of [event] on [jobId] to announce now, or null. Called from each followed job's thread. */
    @Synchronized
    fun accept(jobId: String, event: StreamEvent): Anomaly? {
        if (event.type != EventType.ANOMALY || event.time < since) return null
        if (!seen.add("$jobId#${event.seq}")) return null
        return event.anomaly()
    }
}
