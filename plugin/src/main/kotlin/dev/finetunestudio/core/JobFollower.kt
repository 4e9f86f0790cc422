package dev.finetunestudio.core

import java.io.IOException

/**
 * Follows one job's event stream until the job finishes: every event goes to the caller in order, the
 * `state` event of a finished state ends it. Used by the Run console and by [FollowJobMain].
 * Blocking; [close] from another thread stops it (then [follow] returns null). Throws [IOException] when
 * the server stays unreachable (see [ReconnectPolicy]).
 */
class JobFollower(private val client: StudioClient, private val policy: ReconnectPolicy = ReconnectPolicy()) : AutoCloseable {
    @Volatile private var stream: SseStream? = null
    @Volatile private var closed = false

    /**
     * Streams [jobId]'s events after seq [after] to [onEvent]; returns the finished Job, or null when
     * closed first. [onDrop] hears of each lost connection (the stream then resumes where it was).
     */
    fun follow(
        jobId: String,
        after: Long = 0,
        onDrop: (IOException) -> Unit = {},
        onEvent: (StreamEvent) -> Unit,
    ): Job? {
        val sse = client.jobStream(jobId, after, policy)
        stream = sse
        if (closed) return null
        var finished: Job? = null
        // a job that ends while the connection is down is no special case: the reconnect replays its events
        sse.run(onDrop) { raw ->
            val event = StudioClient.parseStreamEvent(raw)
            onEvent(event)
            if (event.type == EventType.STATE) {
                val job = event.job()
                if (job.isFinished) finished = job
            }
            finished == null
        }
        return finished
    }

    override fun close() {
        closed = true
        stream?.close()
    }
}
