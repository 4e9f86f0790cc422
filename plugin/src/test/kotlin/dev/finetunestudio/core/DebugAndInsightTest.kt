package dev.finetunestudio.core

import com.google.gson.JsonObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test
import java.nio.file.Path

/** Debug Fine-tune's command line, the anomaly notification, the estimate banner and the run diff texts. */
class DebugAndInsightTest {
    @Test
    fun `Debug Fine-tune runs train on the TOML with the project's state folder`() {
        val toml = Path.of("/p/jobs/sst2/finetune.toml")
        val command = BackendCommand.train("/venv/bin/python", toml, Path.of("/p/.finetune-studio"))
        assertEquals(listOf("/venv/bin/python", "-m", "finetune_studio", "train", "/p/jobs/sst2/finetune.toml"), command.commandLine)
        assertEquals("finetune_studio", command.module)
        assertEquals("train /p/jobs/sst2/finetune.toml", command.parameters)
        assertEquals(Path.of("/p/jobs/sst2"), command.workingDirectory)
        assertEquals("/p/.finetune-studio", command.environment["FINETUNE_STUDIO_HOME"])
        assertEquals("1", command.environment["PYTHONUNBUFFERED"])
        assertEquals("utf-8", command.environment["PYTHONIOENCODING"])
    }

    @Test
    fun `a TOML path with spaces stays one argument`() {
        val command = BackendCommand.train("python", Path.of("/my jobs/a.finetune.toml"), Path.of("/s"))
        assertEquals("train \"/my jobs/a.finetune.toml\"", command.parameters)
        assertEquals("/my jobs/a.finetune.toml", command.commandLine.last())
    }

    private fun anomalyEvent(seq: Long, time: Double) = StreamEvent(
        seq, EventType.ANOMALY, time,
        StudioJson.parseObject(
            """{"kind":"nan","step":12,"value":null,"threshold":null,"detail":"the training loss is nan",
               "rows":[3,17],"saved_to":null}""",
        ),
    )

    @Test
    fun `an anomaly event reads as the Python message and opens the batch's step`() {
        val anomaly = anomalyEvent(5, 100.0).anomaly()
        assertEquals("nan", anomaly.kind)
        assertNull(anomaly.value)
        assertEquals("the training loss is nan at step 12; the batch holds training rows [3, 17]", anomaly.message())
        assertEquals("job=abc%201&step=12", DashboardRoute.batch("abc 1", 12))
        assertEquals("compare=a,b", DashboardRoute.compare(listOf("a", "b")))
        val line = ConsoleLines.of(anomalyEvent(5, 100.0))!!
        assertTrue(line.isError)
        assertTrue(line.text, line.text.startsWith("anomaly (nan): the training loss is nan at step 12"))
    }

    @Test
    fun `each anomaly is announced once and old ones not at all`() {
        val alerts = AnomalyAlerts(since = 50.0)
        assertNull("older than the watch", alerts.accept("j", anomalyEvent(1, 10.0)))
        assertEquals(12, alerts.accept("j", anomalyEvent(2, 60.0))?.step)
        assertNull("replayed after a reconnect", alerts.accept("j", anomalyEvent(2, 60.0)))
        assertEquals(12, alerts.accept("k", anomalyEvent(2, 60.0))?.step)
        assertNull(alerts.accept("j", StreamEvent(3, EventType.METRIC, 70.0, JsonObject())))
    }

    @Test
    fun `an estimate becomes the banner's parts, unknown fields are ignored, missing ones absent`() {
        // the shape of backend/finetune_studio/estimate.py's Estimate, trimmed
        val full = StudioJson.fromJson(
            """{"architecture":"BertForSequenceClassification","parameters":110000000,"fits":false,
               "memory":{"weights":1,"gradients":1,"optimizer":2,"activations":3,"runtime":4,"total":32427212800},
               "devices":[{"name":"CPU","kind":"cpu","memory":68719476736,"fits":true,"max_batch_size":64},
                          {"name":"NVIDIA L4","kind":"cuda","index":0,"memory":25769803776,"fits":false,"max_batch_size":8}],
               "max_batch_size":8,"seconds_per_epoch":3725,"warning":"needs 30.2 GB, the GPU has 24 GB",
               "suggestion":"batch_size = 8","suggested":{"training.batch_size":8},"notes":[]}""",
            Estimate::class.java,
        )
        assertEquals(
            EstimateSummary(false, "30 GB of 24 GB on NVIDIA L4", "1h02m", "needs 30.2 GB, the GPU has 24 GB", "batch_size = 8"),
            EstimateSummary.of(full),
        )
        val minimal = EstimateSummary.of(StudioJson.fromJson("""{"fits":true,"warning":null,"suggestion":""}""", Estimate::class.java))
        assertEquals(EstimateSummary(true, null, null, null, null), minimal)
        assertEquals("1.5 GB", EstimateSummary.gigabytes(1536L * 1024 * 1024))
    }

    @Test
    fun `two runs diff as sorted spec lines, commit and diff, data and versions`() {
        val job = StudioJson.fromJson(
            """{"id":"j1","name":"sst2","spec":{"model":"m","training":{"epochs":3,"args":{}},"data":{"train":"/t.csv"}}}""",
            Job::class.java,
        )
        assertEquals("data.train = \"/t.csv\"\nmodel = \"m\"\ntraining.args = {}\ntraining.epochs = 3\n", RunDiff.specText(job, null))
        assertEquals("sst2 (j1)", RunDiff.title(job))
        val attached = StudioJson.fromJson("""{"id":"r","kind":"attached","spec":null,"training_args":{"seed":1}}""", Job::class.java)
        assertEquals("seed = 1\n", RunDiff.specText(attached, null))
        // the shape of backend/finetune_studio/lineage.py's Lineage, trimmed
        val lineage = StudioJson.fromJson(
            """{"job_id":"j1","recorded_at":1.0,"spec":{"model":"m2"},
               "code":{"folder":"/p","repository":"/p","commit":"abc123","branch":"main","diff":"--- a/x.py\n+++ b/x.py\n","files":{}},
               "data":[{"field":"data.train","path":"/t.csv","size":10,"mtime":1.0,"rows":2,"sha256":"ff"}],
               "environment":{"torch":"2.5","peft":null}}""",
            Lineage::class.java,
        )
        assertEquals("model = \"m2\"\n", RunDiff.specText(job, lineage))
        assertEquals("commit abc123 (main)\n\n--- a/x.py\n+++ b/x.py\n", RunDiff.codeText(lineage))
        assertEquals("data.train /t.csv: 2 rows, 10 bytes, sha256 ff\npeft (not installed)\ntorch 2.5\n", RunDiff.environmentText(lineage))
        assertEquals("(no code state recorded for this run)\n", RunDiff.codeText(Lineage()))
        assertEquals("/q: not a git repository\n", RunDiff.codeText(Lineage(code = CodeState(folder = "/q"))))
        assertEquals("commit abc123\n(no uncommitted changes)\n", RunDiff.codeText(Lineage(code = CodeState("/p", "/p", "abc123"))))
    }

    @Test
    fun `estimate and lineage are asked of the server as the issue says`() {
        FakeServer().use { server ->
            server.route("/api/estimate") { exchange, _ -> FakeServer.json(exchange, 200, """{"fits":true}""") }
            server.route("/api/jobs/") { exchange, _ -> FakeServer.json(exchange, 200, """{"code":{"folder":"/p","commit":"c"}}""") }
            val client = StudioClient(server.url, "t")
            assertTrue(client.estimate(StudioJson.parseObject("""{"model":"m"}""")).fits)
            assertEquals("c", client.lineage("j 1").code?.commit)
            assertEquals(listOf("POST /api/estimate {\"model\":\"m\"}", "GET /api/jobs/j 1/lineage "), server.requests.map { "${it.method} ${it.path} ${it.body}" })
        }
    }
}
