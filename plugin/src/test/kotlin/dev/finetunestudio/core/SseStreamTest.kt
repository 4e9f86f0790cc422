package dev.finetunestudio.core

import dev.finetunestudio.core.FakeServer.Companion.sse
import dev.finetunestudio.core.FakeServer.Companion.startSse
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.IOException
import java.net.URI
import java.net.http.HttpRequest
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread

class SseStreamTest {
    private val server = FakeServer()
    private val fast = ReconnectPolicy(initialDelayMillis = 20, maxDelayMillis = 50, maxAttempts = 3)

    @After
    fun stop() = server.close()

    private fun stream(policy: ReconnectPolicy = fast) = SseStream(StudioClient.defaultHttpClient(), policy) { lastId ->
        HttpRequest.newBuilder(URI.create("${server.url}/stream"))
            .apply { if (lastId != null) header("Last-Event-ID", lastId) }
            .GET().build()
    }

    private fun event(seq: Int) = "id: $seq\nevent: metric\ndata: {\"seq\": $seq}\n\n"

    @Test
    fun `reconnects after a drop with Last-Event-ID and loses or repeats nothing`() {
        val connections = AtomicInteger()
        server.route("/stream") { exchange, seen ->
            startSse(exchange)
            when (connections.incrementAndGet()) {
                1 -> {
                    assertEquals(null, seen.headers["Last-Event-ID"])
                    sse(exchange, event(1) + ": ping\n\n" + event(2) + event(3))
                    sse(exchange, "id: 4\nevent: metric\ndata: {\"seq\": 4, \"cut\": ") // dropped mid-event
                }
                else -> {
                    // the server replays what follows the last complete event
                    val after = checkNotNull(seen.headers["Last-Event-ID"]).toInt()
                    sse(exchange, (after + 1..6).joinToString("") { event(it) })
                }
            }
        }
        val seqs = mutableListOf<String?>()
        val drops = mutableListOf<IOException>()
        stream().run(onDrop = { drops += it }) { e ->
            seqs += e.id
            e.id != "6"
        }
        assertEquals(listOf("1", "2", "3", "4", "5", "6"), seqs)
        assertEquals(1, drops.size)
        assertEquals(listOf(null, "3"), server.requests.map { it.headers["Last-Event-ID"] })
    }

    @Test
    fun `multi-line data and heartbeats arrive as one event`() {
        server.route("/stream") { exchange, _ ->
            startSse(exchange)
            sse(exchange, ": heartbeat\n\n: heartbeat\n\nid: 9\nevent: log\ndata: line one\ndata: line two\n\n")
        }
        val got = mutableListOf<SseEvent>()
        stream().run { got += it; false }
        assertEquals(listOf(SseEvent("9", "log", "line one\nline two")), got)
    }

    @Test
    fun `gives up after the policy's attempts when the server keeps failing`() {
        server.route("/stream") { exchange, _ -> FakeServer.json(exchange, 503, "{\"detail\": \"busy\"}") }
        val drops = AtomicInteger()
        try {
            stream().run(onDrop = { drops.incrementAndGet() }) { true }
            fail("expected an IOException")
        } catch (e: IOException) {
            assertTrue(e.message, e.message.orEmpty().contains("3 reconnects"))
        }
        assertEquals(3, drops.get())
        assertEquals(4, server.requests.size)
    }

    @Test
    fun `a 401 is not retried`() {
        server.route("/stream") { exchange, _ -> FakeServer.json(exchange, 401, "{\"detail\": \"missing or wrong token\"}") }
        try {
            stream().run { true }
            fail("expected a StudioApiException")
        } catch (e: StudioApiException) {
            assertEquals(401, e.status)
            assertEquals("missing or wrong token", e.message)
        }
        assertEquals(1, server.requests.size)
    }

    @Test
    fun `a server that answers and hangs up at once is asked again less and less often`() {
        // each connection brings an event, so the stream never gives up; it must still back off (issue 10)
        val times = CopyOnWriteArrayList<Long>()
        server.route("/stream") { exchange, _ ->
            times += System.nanoTime()
            startSse(exchange)
            sse(exchange, event(times.size))
        }
        val policy = ReconnectPolicy(initialDelayMillis = 40, maxDelayMillis = 320, maxAttempts = 3)
        stream(policy).run { it.id != "6" }
        val gaps = times.zipWithNext { a, b -> TimeUnit.NANOSECONDS.toMillis(b - a) }
        assertEquals(5, gaps.size)
        assertTrue("gaps $gaps", gaps[0] < 300)
        assertTrue("gaps $gaps", gaps[3] >= 300 && gaps[4] >= 300)
    }

    @Test
    fun `close stops a stream that is waiting for data`() {
        val connected = CountDownLatch(1)
        server.route("/stream") { exchange, _ ->
            startSse(exchange)
            sse(exchange, ": open\n\n")
            connected.countDown()
            Thread.sleep(10_000)
        }
        val stream = stream()
        val finished = CountDownLatch(1)
        val errors = CopyOnWriteArrayList<Throwable>()
        thread {
            try {
                stream.run { true }
            } catch (e: Throwable) {
                errors += e
            } finally {
                finished.countDown()
            }
        }
        assertTrue(connected.await(5, TimeUnit.SECONDS))
        stream.close()
        assertTrue("run() did not return after close()", finished.await(5, TimeUnit.SECONDS))
        assertEquals(emptyList<Throwable>(), errors)
    }

    @Test
    fun `a silent connection counts as dropped after the idle timeout`() {
        val connections = AtomicInteger()
        server.route("/stream") { exchange, seen ->
            startSse(exchange)
            if (connections.incrementAndGet() == 1) {
                sse(exchange, event(1))
                Thread.sleep(10_000) // no heartbeat: a dead peer
            } else {
                assertEquals("1", seen.headers["Last-Event-ID"])
                sse(exchange, event(2))
            }
        }
        val seqs = mutableListOf<String?>()
        val started = System.nanoTime()
        stream(fast.copy(idleTimeoutMillis = 1_500)).run { seqs += it.id; it.id != "2" }
        assertEquals(listOf("1", "2"), seqs)
        assertTrue(TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - started) < 8)
    }
}
