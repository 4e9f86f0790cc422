package dev.finetunestudio.backend

import com.google.gson.JsonParseException
import com.intellij.openapi.diagnostic.Logger
import com.intellij.openapi.project.Project
import dev.finetunestudio.core.Job
import dev.finetunestudio.core.JobState
import dev.finetunestudio.core.StudioClient
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.delay
import kotlinx.coroutines.isActive
import java.io.IOException

/**
 * Follows the server's job-state stream (`/api/stream`) while the backend runs and raises a notification
 * when a job completes or fails. Only transitions seen live count: a job that was already finished when
 * the watch began (the server replays nothing older, but a reconnect could) is never announced twice.
 */
class JobWatcher(private val project: Project, private val client: StudioClient) {
    private val lastState = HashMap<String, String>()
    private val announced = HashSet<String>()

    /**
     * Watches until cancelled (the backend stops or the project closes). A bad event is logged and skipped;
     * a stream that gives up (the server gone for a while) is opened again after [RETRY_MS].
     */
    suspend fun run() {
        while (currentCoroutineContext().isActive) {
            val stream = client.jobsStream()
            try {
                blockingUntilCancelled(stream) {
                    stream.run(onDrop = { LOG.info("Fine-Tune Studio: job stream dropped (${it.message}); resuming") }) { event ->
                        try {
                            onJob(StudioClient.parseJob(event))
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
    }
}
