package dev.finetunestudio.core

import dev.finetunestudio.core.FakeServer.Companion.json
import dev.finetunestudio.core.FakeServer.Companion.sse
import dev.finetunestudio.core.FakeServer.Companion.startSse
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.ByteArrayOutputStream
import java.io.PrintStream
import java.util.concurrent.atomic.AtomicInteger

/** The follow loop (and FollowJobMain's output) against a server that speaks the real API's SSE. */
class JobFollowerTest {
    private val server = FakeServer()
    private val client = StudioClient(server.url, "tok")

    @After
    fun stop() = server.close()

    private fun job(state: String) = """{"id": "j9", "name": "tiny", "task": "text-classification", "kind": "managed",
        "state": "$state", "attempt": 1, "created_at": 1.0, "output_dir": "/o", "spec": {}}""".replace("\n", " ")

    private fun event(seq: Int, type: String, data: String) =
        "id: $seq\nevent: $type\ndata: {\"seq\": $seq, \"type\": \"$type\", \"time\": 1.0, \"data\": $data}\n\n"

    private fun serveJob(states: AtomicInteger = AtomicInteger()) {
        server.route("/api/jobs") { exchange, seen ->
            when {
                seen.method == "POST" -> json(exchange, 201, job("queued"))
                seen.path.endsWith("/stream") -> {
                    startSse(exchange)
                    if (states.incrementAndGet() == 1) {
                        sse(exchange, event(1, "state", job("running")) + event(2, "metric", """{"step": 5, "values": {"loss": 0.7}}"""))
                        return@route // the connection drops here; the follower resumes after seq 2
                    }
                    assertEquals("2", seen.headers["Last-Event-ID"])
                    sse(exchange, ": ping\n\n" + event(3, "log", """{"seq": 3, "time": 1.0, "stream": "stdout", "text": "saving"}""") +
                        event(4, "state", job("completed")))
                    Thread.sleep(5_000) // the server keeps the stream open; the follower must stop on its own
                }
                else -> json(exchange, 200, job("completed"))
            }
        }
    }

    @Test
    fun `follows a job across a drop to its final state`() {
        serveJob()
        val types = mutableListOf<String>()
        val drops = AtomicInteger()
        val finished = JobFollower(client, ReconnectPolicy(initialDelayMillis = 10)).follow("j9", onDrop = { drops.incrementAndGet() }) {
            types += it.type
        }
        assertEquals(JobState.COMPLETED, finished?.state)
        assertEquals(listOf("state", "metric", "log", "state"), types)
        assertEquals(1, drops.get())
        assertEquals("after=0", server.requests.first { it.path.endsWith("/stream") }.query)
    }

    @Test
    fun `FollowJobMain prints submitted, each event and finished`() {
        serveJob()
        val out = ByteArrayOutputStream()
        val saved = System.out
        val code = try {
            System.setOut(PrintStream(out, true, "UTF-8"))
            FollowJobMain.run(client, StudioJson.parseObject("""{"model": "m", "data": {"train": "t.csv"}}"""))
        } finally {
            System.setOut(saved)
        }
        val lines = out.toString("UTF-8").lines().filter { it.isNotBlank() }
        assertEquals(0, code)
        assertEquals("submitted j9 queued", lines.first())
        assertTrue(lines[2], lines[2].startsWith("event 2 metric {\"step\":5"))
        assertEquals(4, lines.count { it.startsWith("event ") })
        assertEquals("finished j9 completed", lines.last())
    }
}
