package dev.finetunestudio.core

import com.google.gson.JsonObject
import java.io.IOException
import java.util.concurrent.atomic.AtomicBoolean

/**
 * One run of a job in a Run tab, the state machine behind the IDE's `JobProcessHandler`:
 *
 *     preparing ──submit──▶ submitting ──id known──▶ following ──job finished──▶ ended(exit code)
 *
 * - The run always ends, exactly once: any exception (an API error, a malformed reply, a lost stream, a
 *   Gson error) ends it with exit code 1 and its message on the console.
 * - First Stop ([stop]): while preparing, the run ends at once and nothing is submitted; while the submit
 *   request is in flight, the job is cancelled as soon as its id is known (no orphan job trains on); while
 *   following, the server is asked to cancel and the run ends when the job says `cancelled` (its
 *   checkpoint saved).
 * - Second Stop ([kill], when [canKill]): stop following now; the job finishes cancelling on the server.
 * - [close] (detach, or the IDE going away): stop following without ending the run or the job.
 *
 * [background] runs the cancel request, which [stop] (called on the UI thread) must not wait for.
 */
class JobRun(
    private val console: (ConsoleLine) -> Unit,
    private val onEnd: (exitCode: Int) -> Unit,
    private val policy: ReconnectPolicy = ReconnectPolicy(),
    private val background: (Runnable) -> Unit = { task -> Thread(task, "Fine-Tune Studio cancel").apply { isDaemon = true }.start() },
) : AutoCloseable {
    private val ended = AtomicBoolean(false)
    private val lock = Any()
    private var phase = Phase.PREPARING
    private var stopRequested = false
    private var client: StudioClient? = null
    private var jobId: String? = null
    private var follower: JobFollower? = null

    private enum class Phase { PREPARING, SUBMITTING, FOLLOWING }

    val isEnded: Boolean get() = ended.get()

    /** True once Stop was pressed and the run goes on (cancelling): the next Stop is a [kill]. */
    val canKill: Boolean get() = synchronized(lock) { stopRequested } && !isEnded

    /**
     * Submits [spec] with [client] and follows the job to its end (blocking: call it on an IO thread).
     * [onSubmitted] hears of the job once the server has it (the IDE reveals it in the tool window).
     */
    fun execute(client: StudioClient, spec: JsonObject, onSubmitted: (Job) -> Unit = {}) {
        try {
            if (!beginSubmit()) return
            val job = client.submit(spec)
            if (!submitted(client, job)) return
            onSubmitted(job)
            val follow = synchronized(lock) { follower } ?: return
            val finished = follow.follow(
                job.id,
                onDrop = { console(ConsoleLine("connection lost (${it.message}); reconnecting", isSystem = true)) },
            ) { event -> ConsoleLines.of(event)?.let(console) }
            if (finished != null) end(JobState.exitCode(finished.state))
            else end(JobState.exitCode(JobState.CANCELLED)) // closed by kill(): its line is printed already
        } catch (e: Exception) {
            fail(e)
        }
    }

    /** Ends the run with exit code 1, the error on the console (unless it ended already). */
    fun fail(error: Throwable) {
        if (isEnded) return
        console(ConsoleLine(describe(error), isError = true))
        end(1)
    }

    /** Ends the run with [exitCode] (once; later calls do nothing). */
    fun end(exitCode: Int) {
        if (ended.compareAndSet(false, true)) {
            synchronized(lock) { follower }?.close()
            onEnd(exitCode)
        }
    }

    /** First Stop. */
    fun stop() {
        if (isEnded) return
        val second = synchronized(lock) { stopRequested.also { stopRequested = true } }
        if (second) return kill()
        val (id, studio, phaseNow) = synchronized(lock) { Triple(jobId, client, phase) }
        when {
            phaseNow == Phase.PREPARING -> {
                console(ConsoleLine("stopped before the job was submitted", isSystem = true))
                end(JobState.exitCode(JobState.CANCELLED))
            }
            id == null || studio == null ->
                console(ConsoleLine("stopping: the job is cancelled as soon as the server has it", isSystem = true))
            else -> requestCancel(studio, id)
        }
    }

    /** Second Stop: stop following now. */
    fun kill() {
        if (isEnded) return
        val id = synchronized(lock) { jobId }
        val text = if (id == null) "stopped; the job is cancelled when the server answers"
        else "stopped following job $id; it finishes cancelling on the server (see the Training tool window)"
        console(ConsoleLine(text, isSystem = true))
        end(JobState.exitCode(JobState.CANCELLED))
    }

    /** Detach: stop following; neither the run's end nor the job's is reported. */
    override fun close() {
        ended.set(true)
        synchronized(lock) { follower }?.close()
    }

    /** False when the run was stopped (or closed) before anything was sent. */
    private fun beginSubmit(): Boolean = synchronized(lock) {
        if (isEnded || stopRequested) return false
        phase = Phase.SUBMITTING
        true
    }

    /** Records the job's id; cancels it at once when Stop came during the submit. False when the run is over. */
    private fun submitted(studio: StudioClient, job: Job): Boolean {
        val cancelNow = synchronized(lock) {
            client = studio
            jobId = job.id
            phase = Phase.FOLLOWING
            follower = JobFollower(studio, policy)
            stopRequested
        }
        console(ConsoleLine("submitted job ${job.name.ifEmpty { job.id }} (${job.id})", isSystem = true))
        if (isEnded) {
            // killed while the submit was in flight: the job must not train on unseen
            background.invoke(Runnable { cancelQuietly(studio, job.id) })
            return false
        }
        if (cancelNow) requestCancel(studio, job.id)
        return true
    }

    private fun requestCancel(studio: StudioClient, id: String) {
        console(ConsoleLine("cancelling job $id (the worker saves a checkpoint first)", isSystem = true))
        background.invoke(Runnable {
            try {
                studio.cancel(id)
            } catch (e: IOException) {
                console(ConsoleLine("could not cancel job $id: ${describe(e)}", isError = true))
                end(1)
            }
        })
    }

    private fun cancelQuietly(studio: StudioClient, id: String) {
        try {
            studio.cancel(id)
        } catch (e: IOException) {
            console(ConsoleLine("could not cancel job $id: ${describe(e)}", isError = true))
        }
    }

    companion object {
        /** One line for the console: the server's message and hint, else the exception's own message. */
        fun describe(error: Throwable): String = when (error) {
            is StudioApiException -> listOfNotNull(error.message, error.hint?.let { "hint: $it" }).joinToString("\n")
            is IOException -> error.message ?: error.toString()
            else -> "unexpected ${error.javaClass.simpleName}: ${error.message ?: "(no message)"}"
        }
    }
}
