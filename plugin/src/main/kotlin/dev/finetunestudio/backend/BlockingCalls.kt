package dev.finetunestudio.backend

import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope

/**
 * Runs a blocking [block] (an SSE stream, a job follower) on the IO dispatcher, and [close]s its resource
 * when the calling coroutine is cancelled: closing is what wakes a thread blocked in a socket read, which
 * cancellation alone cannot do.
 */
suspend fun <T> blockingUntilCancelled(resource: AutoCloseable, block: () -> T): T = coroutineScope {
    val work = async(Dispatchers.IO) { block() }
    try {
        work.await()
    } catch (e: CancellationException) {
        resource.close()
        throw e
    }
}
