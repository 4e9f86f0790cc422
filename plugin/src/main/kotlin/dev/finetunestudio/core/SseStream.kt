package dev.finetunestudio.core

import java.io.BufferedReader
import java.io.EOFException
import java.io.IOException
import java.io.InputStream
import java.io.InputStreamReader
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.charset.StandardCharsets
import java.util.concurrent.CountDownLatch
import java.util.concurrent.Executors
import java.util.concurrent.ScheduledExecutorService
import java.util.concurrent.TimeUnit

/**
 * How an [SseStream] behaves when its connection drops: wait [initialDelayMillis] (or the server's
 * `retry:`), doubling up to [maxDelayMillis]; the wait starts again from [initialDelayMillis] only after
 * a connection that stayed up for [maxDelayMillis], so a server that answers and hangs up at once is not
 * asked again without a pause. Give up after [maxAttempts] reconnects in a row that bring no event. A connection silent for [idleTimeoutMillis] counts as dropped: the server sends a heartbeat
 * comment every 15 s, so silence means a dead peer (a laptop that slept, a proxy that hung).
 */
data class ReconnectPolicy(
    val initialDelayMillis: Long = 500,
    val maxDelayMillis: Long = 5_000,
    val maxAttempts: Int = 20,
    val idleTimeoutMillis: Long = 45_000,
)

/**
 * A Server-Sent Events subscription that survives drops: after a drop it reconnects with the
 * `Last-Event-ID` of the last event it saw, so the server replays from there and no event is lost or
 * repeated. Blocking by design ([run] holds the calling thread); the IDE calls it on an IO thread and
 * [close]s it from anywhere to stop.
 *
 * [request] builds the request for one connection, given the last event id (null on the first one).
 */
class SseStream(
    private val http: HttpClient,
    private val policy: ReconnectPolicy = ReconnectPolicy(),
    private val request: (lastEventId: String?) -> HttpRequest,
) : AutoCloseable {
    @Volatile private var closed = false
    @Volatile private var body: InputStream? = null
    @Volatile private var lastActivity = System.nanoTime()
    private val closedSignal = CountDownLatch(1)

    /** Ids must survive reconnects, and events half-received at a drop must not. */
    private val parser = SseParser()

    val lastEventId: String? get() = parser.lastEventId

    /**
     * Reads events and hands each to [onEvent] until it returns false or [close] is called; [onDrop] hears
     * of each lost connection before the reconnect. Throws [StudioApiException] on a 4xx answer (a wrong
     * token, or a 404 for a job the server does not know, will not heal by retrying) and [IOException] once [ReconnectPolicy.maxAttempts] is spent.
     */
    fun run(onDrop: (IOException) -> Unit = {}, onEvent: (SseEvent) -> Boolean) {
        val watchdog = WATCHDOG.scheduleWithFixedDelay(::closeIfIdle, WATCH_PERIOD_MS, WATCH_PERIOD_MS, TimeUnit.MILLISECONDS)
        try {
            var failures = 0
            var delay = policy.initialDelayMillis
            while (!closed) {
                val openedAt = System.nanoTime()
                val drop: IOException = try {
                    if (readOneConnection(onEvent)) return
                    EOFException("the server closed the event stream")
                } catch (e: StudioApiException) {
                    throw e
                } catch (e: IOException) {
                    e
                } catch (e: InterruptedException) {
                    Thread.currentThread().interrupt()
                    return
                }
                if (closed) return
                if (eventsThisConnection > 0) failures = 0
                if (TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - openedAt) >= policy.maxDelayMillis) {
                    delay = policy.initialDelayMillis
                }
                if (++failures > policy.maxAttempts) {
                    throw IOException("lost the event stream: ${policy.maxAttempts} reconnects brought nothing", drop)
                }
                onDrop(drop)
                if (closedSignal.await(parser.retryMillis ?: delay, TimeUnit.MILLISECONDS)) return
                delay = (delay * 2).coerceAtMost(policy.maxDelayMillis)
            }
        } finally {
            watchdog.cancel(false)
        }
    }

    private var eventsThisConnection = 0

    /** One connection; true when [onEvent] asked to stop. */
    private fun readOneConnection(onEvent: (SseEvent) -> Boolean): Boolean {
        eventsThisConnection = 0
        parser.resetEvent()
        lastActivity = System.nanoTime()
        val response = http.send(request(parser.lastEventId), HttpResponse.BodyHandlers.ofInputStream())
        val stream = response.body()
        body = stream
        try {
            if (closed) return true
            val status = response.statusCode()
            if (status != 200) {
                val text = String(stream.readNBytes(8192), StandardCharsets.UTF_8)
                if (status in 400..499) throw StudioApiException.fromResponse(status, text)
                throw IOException("HTTP $status from the event stream: ${text.take(200)}")
            }
            val reader = BufferedReader(InputStreamReader(stream, StandardCharsets.UTF_8))
            while (true) {
                val line = reader.readLine() ?: return closed
                lastActivity = System.nanoTime()
                val event = parser.feed(line) ?: continue
                eventsThisConnection++
                if (!onEvent(event)) return true
            }
        } catch (e: IOException) {
            if (closed) return true
            throw e
        } finally {
            body = null
            stream.close()
        }
    }

    private fun closeIfIdle() {
        val idleMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - lastActivity)
        if (idleMs > policy.idleTimeoutMillis) {
            lastActivity = System.nanoTime()
            closeQuietly(body)
        }
    }

    /** Stops [run] from any thread; it returns promptly without throwing. */
    override fun close() {
        closed = true
        closedSignal.countDown()
        closeQuietly(body)
    }

    private companion object {
        const val WATCH_PERIOD_MS = 1_000L

        /** One daemon thread watches every stream for silence; it never keeps the JVM alive. */
        val WATCHDOG: ScheduledExecutorService = Executors.newSingleThreadScheduledExecutor { task ->
            Thread(task, "Fine-Tune Studio SSE watchdog").apply { isDaemon = true }
        }

        fun closeQuietly(stream: InputStream?) {
            try {
                stream?.close()
            } catch (_: IOException) {
                // closing is how a blocked read is woken; a failure to close changes nothing
            }
        }
    }
}
