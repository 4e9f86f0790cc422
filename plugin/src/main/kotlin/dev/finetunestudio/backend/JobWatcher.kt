package dev.finetunestudio.backend

import com.google.gson.JsonParseException
import com.intellij.openapi.diagnostic.Logger
import com.intellij.openapi.project.Project
import dev.finetunestudio.core.AnomalyAlerts
import dev.finetunestudio.core.EventType
import dev.finetunestudio.core.Job
import dev.finetunestudio.core.JobState
import dev.finetunestudio.core.StudioClient
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.delay
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import java.io.IOException
import java.util.concurrent.ConcurrentHashMap

/**
 * Follows the server's job-state stream (`/api/stream`) while the backend runs and raises a notification
 * when a job completes or fails. Only transitions seen live count: a job that was already finished when
 * the watch began (the server replays nothing older, but a reconnect could) is never announced twice.
 *
 * Each job seen running is followed on its own stream for `anomaly` events (issue 15), which raise a
 * notification with *Open batch*; [AnomalyAlerts] keeps each to one balloon and skips those older than
 * the watch (a job already running replays its earlier events).
 */
class JobWatcher(private val project: Project, private val client: StudioClient) {
    private val lastState = HashMap<String, String>()
    private val announced = HashSet<String>()
    private val followed = ConcurrentHashMap.newKeySet<String>()
    private val alerts = AnomalyAlerts(since = System.currentTimeMillis() / 1000.0 - CLOCK_SLACK_S)

    /**
     * Watches until cancelled (the backend stops or the project closes). A bad event is logged and skipped;
     * a stream that gives up (the server gone for a while) is opened again after [RETRY_MS].
     */
    suspend fun run() = coroutineScope {
        val followers: CoroutineScope = this
        while (currentCoroutineContext().isActive) {
            val stream = client.jobsStream()
            try {
                blockingUntilCancelled(stream) {
                    stream.run(onDrop = { LOG.info("Fine-Tune Studio: job stream dropped (${it.message}); resuming") }) { event ->
                        try {
                            val job = StudioClient.parseJob(event)
                            onJob(job)
                            if (job.state == JobState.RUNNING && followed.add(job.id)) followers.launch { followAnomalies(job) }
                        } catch (e: JsonParseException) {
                            LOG.warn("Fine-Tune Studio: skipped a job event that does not parse: ${event.data.take(200)}", e)
                        }
                        true
                    }
                }
            } catch (e: IOException) {
                LOG.info("Fine-Tune Studio: the job stream stopped (${e.message}); watching again in ${RETRY_MS / 1000} s")
            }
            delay(RETRY_MS)
        }
    }

    /** Until [job] finishes: its anomalies as notifications. A lost stream ends the follow (the job's next change resumes it). */
    private suspend fun followAnomalies(job: Job) {
        val stream = client.jobStream(job.id)
        try {
            blockingUntilCancelled(stream) {
                stream.run { raw ->
                    val event = try {
                        StudioClient.parseStreamEvent(raw)
                    } catch (e: JsonParseException) {
                        LOG.warn("Fine-Tune Studio: skipped an event of ${job.id} that does not parse: ${raw.data.take(200)}", e)
                        return@run true
                    }
                    try {
                        alerts.accept(job.id, event)?.let { StudioNotifications.anomaly(project, job, it) }
                        !(event.type == EventType.STATE && JobState.isFinished(event.job().state))
                    } catch (e: JsonParseException) {
                        LOG.warn("Fine-Tune Studio: skipped an event of ${job.id} that does not parse: ${raw.data.take(200)}", e)
                        true
                    }
                }
            }
        } catch (e: IOException) {
            LOG.info("Fine-Tune Studio: stopped following ${job.id} for anomalies (${e.message})")
        } finally {
            followed.remove(job.id)
        }
    }

    private fun onJob(job: Job) {
        val before = lastState.put(job.id, job.state)
        val key = "${job.id}#${job.attempt}"
        val announce = job.state == JobState.COMPLETED || job.state == JobState.FAILED
        if (announce && before != job.state && key !in announced) {
            announced += key
            StudioNotifications.jobFinished(project, job)
        }
    }

    private companion object {
        val LOG: Logger = Logger.getInstance(JobWatcher::class.java)
        const val RETRY_MS = 30_000L
        /** Event times come from the worker's clock, on this machine; a little slack for what raced the watch. */
        const val CLOCK_SLACK_S = 5.0
    }
}
