package dev.finetunestudio.core

import dev.finetunestudio.core.FakeServer.Companion.json
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.IOException
import java.net.ServerSocket

class StudioClientTest {
    private val server = FakeServer()
    private val client = StudioClient(server.url + "/", "tok-123")

    @After
    fun stop() = server.close()

    private val jobJson = """{"id": "j1", "name": "demo", "task": "text-classification", "kind": "managed",
        "state": "queued", "attempt": 1, "created_at": 1.5, "output_dir": "/o", "spec": {"model": "m"}}"""

    @Test
    fun `sends the bearer token and JSON, and reads snake_case answers`() {
        server.route("/api/jobs") { exchange, _ -> json(exchange, 201, jobJson) }
        val spec = StudioJson.parseObject("""{"model": "m", "data": {"train": "t.csv"}}""")
        val job = client.submit(spec)
        assertEquals("j1", job.id)
        assertEquals("/o", job.outputDir)
        assertEquals(1.5, job.createdAt, 0.0)
        val seen = server.requests.single()
        assertEquals("POST", seen.method)
        assertEquals("/api/jobs", seen.path)
        assertEquals("Bearer tok-123", seen.headers["Authorization"])
        assertEquals("application/json", seen.headers["Content-Type"])
        assertEquals(spec, StudioJson.parseObject(seen.body))
    }

    @Test
    fun `builds the paths and queries of the API`() {
        server.route("/api/") { exchange, seen ->
            when {
                seen.path.endsWith("/metrics") -> json(exchange, 200, """{"series": {"loss": {"step": [1], "value": [null], "time": [2.0]}}}""")
                seen.path.endsWith("/logs") -> json(exchange, 200, """{"lines": [{"seq": 4, "time": 1.0, "stream": "stderr", "text": "x"}]}""")
                seen.method == "DELETE" -> json(exchange, 204, "")
                seen.path == "/api/jobs" -> json(exchange, 200, """{"jobs": [$jobJson]}""")
                else -> json(exchange, 200, jobJson)
            }
        }
        val metrics = client.metrics("j1", listOf("loss", "eval_loss"), maxPoints = 500)
        assertNull(metrics.series.getValue("loss").value.single())
        assertEquals("stderr", client.logs("j1", after = 3, limit = 10).lines.single().stream)
        client.cancel("j1")
        client.resume("j1")
        client.delete("j1", files = true)
        assertEquals("j1", client.jobs().single().id)
        assertEquals(
            listOf(
                "GET /api/jobs/j1/metrics max_points=500&names=loss%2Ceval_loss",
                "GET /api/jobs/j1/logs after=3&limit=10",
                "POST /api/jobs/j1/cancel null",
                "POST /api/jobs/j1/resume null",
                "DELETE /api/jobs/j1 files=true",
                "GET /api/jobs null",
            ),
            server.requests.map { "${it.method} ${it.path} ${it.query}" },
        )
    }

    @Test
    fun `a bad spec becomes an exception that names each field`() {
        server.route("/api/jobs") { exchange, _ ->
            json(exchange, 422, """{"detail": [{"loc": ["training", "learning_rate"], "field": "training.learning_rate",
                "msg": "Input should be less than 1 (got 5)"}, {"loc": ["data", "train"], "field": "data.train", "msg": "required"}],
                "type": "invalid_spec", "hint": "fix the named fields of finetune.toml (or the form) and submit again"}""")
        }
        try {
            client.submit(JobSpec(model = "m"))
            fail("expected a StudioApiException")
        } catch (e: StudioApiException) {
            assertEquals(422, e.status)
            assertEquals("invalid_spec", e.type)
            assertEquals("training.learning_rate: Input should be less than 1 (got 5); data.train: required", e.message)
            assertTrue(e.hint.orEmpty().startsWith("fix the named fields"))
        }
    }

    @Test
    fun `error bodies of FastAPI and of other servers are read too`() {
        val fastApi = StudioApiException.fromResponse(422, """{"detail": [{"loc": ["body", "attempt"], "msg": "Field required", "type": "missing"}]}""")
        assertEquals("attempt: Field required", fastApi.message)
        val plain = StudioApiException.fromResponse(502, "<html>Bad gateway</html>")
        assertEquals("HTTP 502: <html>Bad gateway</html>", plain.message)
        assertTrue(StudioApiException.fromResponse(401, """{"detail": "missing or wrong token"}""").isUnauthorized)
    }

    @Test
    fun `an unreachable server is an IOException`() {
        val freePort = ServerSocket(0).use { it.localPort }
        try {
            StudioClient("http://127.0.0.1:$freePort", "t").health()
            fail("expected an IOException")
        } catch (e: StudioApiException) {
            fail("not an API error: $e")
        } catch (e: IOException) {
            // expected: nothing listens there
        }
    }

    @Test
    fun `dashboard url carries the token, theme and fragment`() {
        assertEquals(
            "${server.url}/?token=tok-123&theme=dark#job=j1",
            client.dashboardUrl("job=j1", theme = "dark"),
        )
        assertEquals("http://h:1/?token=a%2Bb%26c", StudioClient("http://h:1", "a+b&c").dashboardUrl())
    }

    @Test
    fun `the stream of an unknown job ends at its 404 instead of reconnecting`() {
        server.route("/api/jobs/") { exchange, _ -> json(exchange, 404, """{"detail": "no job 'gone'", "type": "not_found"}""") }
        try {
            JobFollower(client).follow("gone") { fail("no event expected") }
            fail("expected a StudioApiException")
        } catch (e: StudioApiException) {
            assertEquals(404, e.status)
            assertEquals("no job 'gone'", e.message)
        }
        assertEquals(1, server.requests.size)
    }

    @Test
    fun `latest eval is an eval event, or null before the first evaluation`() {
        var evaluated = false
        server.route("/api/jobs/j1/evals/latest") { exchange, _ ->
            if (!evaluated) json(exchange, 200, "null")
            else json(exchange, 200, """{"seq": 40, "type": "eval", "time": 9.0, "data": {"step": 300, "values": {"eval_accuracy": 0.9},
                "samples": [{"input": "the capital of norway", "prediction": "oslo", "reference": "oslo"}]}}""")
        }
        assertNull(client.latestEval("j1"))
        evaluated = true
        val eval = checkNotNull(client.latestEval("j1")).eval()
        assertEquals(300, eval.step)
        assertEquals("oslo", eval.samples?.single()?.prediction)
    }

    @Test
    fun `job stream events parse into StreamEvents`() {
        val raw = SseEvent("12", "progress", """{"seq": 12, "type": "progress", "time": 3.5,
            "data": {"step": 5, "max_steps": 20, "epoch": 0.25, "samples_per_second": 41.0, "eta_seconds": null}}""")
        val event = StudioClient.parseStreamEvent(raw)
        assertEquals(12L, event.seq)
        val progress = event.progress()
        assertEquals(20, progress.maxSteps)
        assertEquals(0.25, checkNotNull(progress.fraction), 1e-9)
        assertNull(progress.etaSeconds)
    }
}
