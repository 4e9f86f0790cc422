package dev.finetunestudio.core

import dev.finetunestudio.core.FakeServer.Companion.json
import dev.finetunestudio.core.FakeServer.Companion.sse
import dev.finetunestudio.core.FakeServer.Companion.startSse
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.CountDownLatch
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlin.concurrent.thread

/** The Run tab's state machine against a real HTTP server whose answers each test writes. */
class JobRunTest {
    private val server = FakeServer()
    private val client = StudioClient(server.url, "t")
    private val lines = CopyOnWriteArrayList<ConsoleLine>()
    private val exits = LinkedBlockingQueue<Int>()
    private val run = JobRun(console = { lines += it }, onEnd = { exits += it }, policy = ReconnectPolicy(20, 50, 2))
    private val spec = StudioJson.parseObject("""{"model": "m", "data": {"train": "t.csv"}}""")

    @After
    fun stop() = server.close()

    private fun job(state: String) = """{"id": "j1", "name": "demo", "state": "$state", "created_at": 1.0, "spec": {"model": "m"}}"""

    private fun stateEvent(seq: Int, state: String) =
        "id: $seq\nevent: state\ndata: {\"seq\": $seq, \"type\": \"state\", \"time\": 1.0, \"data\": ${job(state)}}\n\n"

    private fun exitCode(): Int = checkNotNull(exits.poll(10, TimeUnit.SECONDS)) { "the run did not end; console: $lines" }

    private fun text(): String = lines.joinToString("\n") { it.text }

    private fun eventually(condition: () -> Boolean) {
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10)
        while (!condition()) {
            check(System.nanoTime() < deadline) { "not within 10 s; console: $lines; requests: ${server.requests.map { it.path }}" }
            Thread.sleep(10)
        }
    }

    private fun executeInBackground() = thread { run.execute(client, spec) }

    @Test
    fun `a completed job ends the run with 0`() {
        server.route("/api/jobs") { exchange, seen ->
            if (seen.path == "/api/jobs") return@route json(exchange, 201, job("queued"))
            startSse(exchange)
            sse(exchange, stateEvent(1, "running") + stateEvent(2, "completed"))
        }
        run.execute(client, spec)
        assertEquals(0, exitCode())
        assertTrue(text(), text().contains("job demo is completed"))
    }

    @Test
    fun `a refused spec ends the run with 1 and the server's words`() {
        server.route("/api/jobs") { exchange, _ ->
            json(exchange, 422, """{"detail": [{"field": "data.train", "msg": "no such file"}], "type": "invalid_spec", "hint": "fix finetune.toml"}""")
        }
        run.execute(client, spec)
        assertEquals(1, exitCode())
        assertTrue(text(), text().contains("data.train: no such file"))
        assertTrue(text(), text().contains("hint: fix finetune.toml"))
        assertTrue(lines.last().isError)
    }

    @Test
    fun `a malformed reply ends the run with 1 instead of hanging it`() {
        server.route("/api/jobs") { exchange, _ -> json(exchange, 201, "<html>proxy error</html>") }
        run.execute(client, spec)
        assertEquals(1, exitCode())
        assertTrue(text(), text().startsWith("unexpected"))
    }

    @Test
    fun `a malformed event ends the run with 1`() {
        server.route("/api/jobs") { exchange, seen ->
            if (seen.path == "/api/jobs") return@route json(exchange, 201, job("queued"))
            startSse(exchange)
            sse(exchange, "id: 1\nevent: metric\ndata: {not json\n\n")
        }
        run.execute(client, spec)
        assertEquals(1, exitCode())
        assertTrue(lines.last().isError)
    }

    @Test
    fun `an unreachable server ends the run with 1`() {
        val freePort = java.net.ServerSocket(0).use { it.localPort }
        run.execute(StudioClient("http://127.0.0.1:$freePort", "t"), spec)
        assertEquals(1, exitCode())
    }

    @Test
    fun `stop while preparing ends the run and submits nothing`() {
        run.stop()
        assertEquals(130, exitCode())
        run.execute(client, spec)
        assertTrue(server.requests.isEmpty())
        assertTrue(exits.isEmpty())
    }

    @Test
    fun `stop during the submit cancels the job as soon as its id is known`() {
        val submitting = CountDownLatch(1)
        val release = CountDownLatch(1)
        val cancelled = CountDownLatch(1)
        server.route("/api/jobs") { exchange, seen ->
            when {
                seen.path == "/api/jobs" -> {
                    submitting.countDown()
                    release.await(10, TimeUnit.SECONDS)
                    json(exchange, 201, job("queued"))
                }
                seen.path.endsWith("/cancel") -> {
                    cancelled.countDown()
                    json(exchange, 200, job("cancelling"))
                }
                else -> {
                    startSse(exchange)
                    cancelled.await(10, TimeUnit.SECONDS)
                    sse(exchange, stateEvent(1, "cancelling") + stateEvent(2, "cancelled"))
                }
            }
        }
        executeInBackground()
        assertTrue(submitting.await(10, TimeUnit.SECONDS))
        run.stop()
        assertTrue(run.canKill)
        release.countDown()
        assertEquals(130, exitCode())
        assertTrue("the job was not cancelled: ${server.requests.map { it.path }}", server.requests.any { it.path == "/api/jobs/j1/cancel" })
        assertTrue(text(), text().contains("job demo is cancelled"))
    }

    @Test
    fun `a second stop ends the run while the job is still cancelling`() {
        val following = CountDownLatch(1)
        server.route("/api/jobs") { exchange, seen ->
            when {
                seen.path == "/api/jobs" -> json(exchange, 201, job("queued"))
                seen.path.endsWith("/cancel") -> json(exchange, 200, job("cancelling"))
                else -> {
                    startSse(exchange)
                    sse(exchange, stateEvent(1, "running"))
                    following.countDown()
                    Thread.sleep(10_000) // the worker takes its time to save a checkpoint
                }
            }
        }
        executeInBackground()
        assertTrue(following.await(10, TimeUnit.SECONDS))
        assertFalse(run.canKill)
        run.stop()
        assertTrue(run.canKill)
        val started = System.nanoTime()
        run.stop() // the platform calls kill() for the second Stop; a second stop() does the same
        assertEquals(130, exitCode())
        assertTrue(TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - started) < 5)
        eventually { server.requests.any { it.path == "/api/jobs/j1/cancel" } }
        assertTrue(exits.isEmpty())
    }

    @Test
    fun `a failed cancel ends the run with the reason`() {
        server.route("/api/jobs") { exchange, seen ->
            when {
                seen.path == "/api/jobs" -> json(exchange, 201, job("queued"))
                seen.path.endsWith("/cancel") -> json(exchange, 409, """{"detail": "job j1 is completed", "type": "conflict"}""")
                else -> {
                    startSse(exchange)
                    sse(exchange, stateEvent(1, "running"))
                    Thread.sleep(10_000)
                }
            }
        }
        executeInBackground()
        eventually { lines.any { it.text.contains("is running") } }
        run.stop()
        assertEquals(1, exitCode())
        assertTrue(text(), text().contains("could not cancel job j1: job j1 is completed"))
    }
}
