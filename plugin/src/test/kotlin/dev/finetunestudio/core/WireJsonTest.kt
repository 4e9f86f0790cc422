package dev.finetunestudio.core

import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

/** JSON of every wire type: snake_case names out, defaults for absent fields in, round trips. */
class WireJsonTest {
    private inline fun <reified T : Any> roundTrip(value: T): T {
        val back = StudioJson.fromJson(StudioJson.toJson(value), T::class.java)
        assertEquals(value, back)
        return back
    }

    private fun keys(value: Any): Set<String> = StudioJson.toTree(value).asJsonObject.keySet()

    @Test
    fun `every wire type round trips`() {
        val progress = Progress(step = 3, maxSteps = 10, epoch = 0.3, samplesPerSecond = 12.5, etaSeconds = 40.0)
        val job = Job(
            id = "j", name = "n", task = "seq2seq", kind = "managed", state = JobState.RUNNING, attempt = 2,
            createdAt = 1.0, startedAt = 2.0, progress = progress, device = "cuda:1", outputDir = "/o",
            error = JobError("data_error", "no column 'txt'", "columns: text, label"), bestMetric = mapOf("eval_f1" to 0.5),
            spec = StudioJson.parseObject("""{"model": "m"}"""),
        )
        roundTrip(progress)
        roundTrip(job)
        roundTrip(JobList(listOf(job)))
        roundTrip(Metrics(mapOf("loss" to Series(listOf(1, 2), listOf(0.5, null), listOf(1.0, 2.0))), mapOf("loss" to 2)))
        roundTrip(Logs(listOf(LogLine(1, 2.0, "stderr", "warning: slow tokenizer"))))
        roundTrip(StreamEvent(5, EventType.METRIC, 1.0, StudioJson.parseObject("""{"step": 1, "values": {"loss": 1.5}}""")))
        roundTrip(IngestBatch(2, listOf(ReporterEvent(1, EventType.END, 3.0, StudioJson.parseObject("""{"state": "completed"}""")))))
        roundTrip(IngestResult(3, 1))
        roundTrip(RunCreate("script", "custom", "/out", mapOf("learning_rate" to 5e-5, "report_to" to "none", "fp16" to false), pid = 77))
        roundTrip(Job(id = "a", kind = "attached", trainingArgs = mapOf("num_train_epochs" to 1.0, "report_to" to "none")))
        roundTrip(Health("ok", "0.1.0", 4242))
        roundTrip(SystemInfo(listOf(Device(null, "cpu", "CPU"), Device(0, "cuda", "H200", 1.0, 0.5, 90.0, "j")), mapOf("torch" to "2.9")))
        roundTrip(StepBatch(7, listOf(BatchExample(3, "text", null, 5))))
        roundTrip(ServerInfo("http://127.0.0.1:1", "t", 9, "0.1.0"))
    }

    @Test
    fun `names go out in snake_case`() {
        assertEquals(setOf("step", "max_steps", "epoch", "samples_per_second", "eta_seconds"), keys(Progress(samplesPerSecond = 1.0, etaSeconds = 2.0)))
        assertTrue(keys(Job(bestMetric = emptyMap())).containsAll(listOf("created_at", "output_dir", "best_metric")))
        assertTrue(keys(Device(memoryTotalMb = 1.0, busyJob = "j")).containsAll(listOf("memory_total_mb", "busy_job")))
        assertEquals(setOf("series", "total_points", "last_seq"), keys(Metrics()))
        assertTrue(keys(RunCreate(pid = 1)).contains("output_dir"))
    }

    @Test
    fun `absent fields keep their defaults and nulls stay null`() {
        val job = StudioJson.fromJson("""{"id": "j", "state": "completed", "error": null, "progress": {"step": 4}}""", Job::class.java)
        assertEquals("managed", job.kind)
        assertEquals(4, job.progress.step)
        assertEquals(0, job.progress.maxSteps)
        assertNull(job.progress.fraction)
        assertNull(job.error)
        assertTrue(job.isFinished)
        assertNull(job.spec)
        assertNull(job.trainingArgs)
    }

    @Test
    fun `stream event payloads parse by type`() {
        fun event(type: String, data: String) = StreamEvent(1, type, 0.0, StudioJson.parseObject(data))
        assertEquals(MetricPoint(10, mapOf("loss" to 0.25, "grad_norm" to null)), event("metric", """{"step": 10, "values": {"loss": 0.25, "grad_norm": null}}""").metric())
        val eval = event("eval", """{"step": 20, "values": {"eval_accuracy": 0.9}, "confusion_matrix": [[5, 1], [0, 4]], "labels": ["a", "b"]}""").eval()
        assertEquals(listOf(listOf(5L, 1L), listOf(0L, 4L)), eval.confusionMatrix)
        assertEquals(listOf("a", "b"), eval.labels)
        val withSamples = event("eval", """{"step": 30, "values": {}, "samples": [{"input": "x", "prediction": "a", "reference": "b"}]}""").eval()
        assertEquals(listOf(EvalSample("x", "a", "b")), withSamples.samples)
        assertEquals("stderr", event("log", """{"seq": 3, "time": 1.0, "stream": "stderr", "text": "boom"}""").log().stream)
        assertEquals(JobState.FAILED, event("state", """{"id": "j", "state": "failed", "error": {"type": "t", "message": "m"}}""").job().state)
        assertEquals(mapOf("gpu_memory_mb" to 512.0), event("system", """{"values": {"gpu_memory_mb": 512}}""").system().values)
    }

    @Test
    fun `job states and their exit codes`() {
        assertEquals(0, JobState.exitCode(JobState.COMPLETED))
        assertTrue(JobState.exitCode(JobState.FAILED) != 0)
        assertTrue(JobState.exitCode(JobState.CANCELLED) != 0)
        assertFalse(JobState.isFinished(JobState.CANCELLING))
        assertTrue(JobState.RESUMABLE.all(JobState::isFinished))
    }

    @Test
    fun `job spec defaults are the Python ones and gpus stays a primitive`() {
        val spec = StudioJson.fromJson("""{"model": "m", "data": {"train": "t.csv"}, "resources": {"gpus": "all"}}""", JobSpec::class.java)
        assertEquals("text-classification", spec.task)
        assertEquals(3.0, spec.training.epochs, 0.0)
        assertEquals(16, spec.training.batchSize)
        assertEquals(2e-5, spec.training.learningRate, 0.0)
        assertEquals(0.01, spec.training.weightDecay, 0.0)
        assertEquals("text", spec.data.textColumn)
        assertEquals(JsonPrimitive("all"), spec.resources.gpus)
        assertNull(spec.lora)
        val out = StudioJson.toTree(spec.copy(resources = ResourcesSpec(gpus = JsonPrimitive(2)))).asJsonObject
        assertEquals(2, out.getAsJsonObject("resources").get("gpus").asInt)
        assertTrue(out.getAsJsonObject("training").has("learning_rate"))
        assertFalse("nulls are left out of what is sent", out.has("lora"))
    }

    @Test
    fun `spec overrides write only the given values`() {
        val spec = StudioJson.parseObject("""{"model": "m", "training": {"epochs": 3, "seed": 7}}""")
        SpecOverrides(epochs = "1.5", batchSize = " 8 ", learningRate = "", maxSteps = null).applyTo(spec)
        assertEquals(StudioJson.parseObject("""{"epochs": 1.5, "seed": 7, "batch_size": 8}"""), spec.getAsJsonObject("training"))
        val noTraining = SpecOverrides(maxSteps = "20", learningRate = "3e-5").applyTo(StudioJson.parseObject("""{"model": "m"}"""))
        assertEquals(StudioJson.parseObject("""{"learning_rate": 3e-5, "max_steps": 20}"""), noTraining.getAsJsonObject("training"))
    }

    @Test
    fun `spec overrides name what is wrong`() {
        assertEquals(emptyList<String>(), SpecOverrides().problems())
        assertEquals(
            listOf(
                "epochs: expected a positive number, got 'three'",
                "batch_size: expected a positive number, got '0'",
                "max_steps: expected a positive number, got '2.5'",
                "learning_rate: expected a value below 1, got 2.0",
            ),
            SpecOverrides(epochs = "three", batchSize = "0", learningRate = "2", maxSteps = "2.5").problems(),
        )
    }

    @Test
    fun `job config file names`() {
        assertTrue(JobConfigFiles.isJobConfig("finetune.toml"))
        assertTrue(JobConfigFiles.isJobConfig("ner.finetune.toml"))
        assertFalse(JobConfigFiles.isJobConfig(".finetune.toml"))
        assertFalse(JobConfigFiles.isJobConfig("pyproject.toml"))
        assertFalse(JobConfigFiles.isJobConfig("finetune.toml.bak"))
        assertEquals("reviews", JobConfigFiles.runName("finetune.toml", "reviews"))
        assertEquals("ner", JobConfigFiles.runName("ner.finetune.toml", "reviews"))
    }
}
