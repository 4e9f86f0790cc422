package dev.finetunestudio.core

import com.google.gson.GsonBuilder
import com.google.gson.JsonElement
import com.google.gson.FieldNamingPolicy
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.nio.file.Files
import java.nio.file.Path

/**
 * The Kotlin side of the wire contract: `tests/test_wire.py` writes one example per public model of
 * `wire/` (and a JobSpec) into `tests/fixtures/wire/`; each must parse into its Kotlin twin with every
 * field known here, so a field added, renamed or retyped on one side fails a test on the other.
 * The folder comes from -Dfinetunestudio.wireFixtures, else is searched upwards from the working directory.
 */
class WireContractTest {
    private val types: Map<String, Class<*>> = mapOf(
        "Progress" to Progress::class.java, "JobError" to JobError::class.java, "Job" to Job::class.java,
        "JobList" to JobList::class.java, "Series" to Series::class.java, "Metrics" to Metrics::class.java,
        "LogLine" to LogLine::class.java, "Logs" to Logs::class.java, "StreamEvent" to StreamEvent::class.java,
        "ReporterEvent" to ReporterEvent::class.java, "IngestBatch" to IngestBatch::class.java,
        "IngestResult" to IngestResult::class.java, "RunCreate" to RunCreate::class.java, "Health" to Health::class.java,
        "Device" to Device::class.java, "SystemInfo" to SystemInfo::class.java, "BatchExample" to BatchExample::class.java,
        "StepBatch" to StepBatch::class.java, "ServerInfo" to ServerInfo::class.java, "JobSpec" to JobSpec::class.java,
        "EvalSample" to EvalSample::class.java, "Anomaly" to Anomaly::class.java, "EventList" to EventList::class.java,
        "Problem" to Problem::class.java, "ErrorBody" to ErrorBody::class.java,
        // the estimate (issue 16): Estimate.kt
        "MemoryEstimate" to MemoryEstimate::class.java, "DeviceFit" to DeviceFit::class.java, "Estimate" to Estimate::class.java,
        // lineage (issue 16): Lineage.kt
        "CodeState" to CodeState::class.java, "DataFile" to DataFileState::class.java, "Lineage" to Lineage::class.java,
        "ValueChange" to ValueChange::class.java, "FileChange" to FileChange::class.java, "RowChange" to RowChange::class.java,
        "DataChange" to DataChange::class.java, "LineageDiff" to LineageDiff::class.java,
        "WorktreeCheck" to WorktreeCheck::class.java,
    )

    /** Models of wire/ that only the dashboard reads (captured tensors): the plugin has no twin for them. */
    private val dashboardOnly = setOf(
        "ArrayData", "HistogramData", "TensorSummary", "TensorCapture", "TensorInfo", "TensorList", "TensorDetail",
    )

    /** Writes nulls too, so that a field Kotlin knows but leaves null still shows up in the comparison. */
    private val withNulls = GsonBuilder().setFieldNamingPolicy(FieldNamingPolicy.LOWER_CASE_WITH_UNDERSCORES).serializeNulls().create()

    private val fixtures: Path by lazy { findFixtures() }

    private fun read(name: String): String = Files.readString(fixtures.resolve("$name.json"))

    private fun <T> parse(name: String, type: Class<T>): T = StudioJson.fromJson(read(name), type)

    @Test
    fun `every fixture has a Kotlin type and every Kotlin type a fixture`() {
        val files = Files.list(fixtures).use { s -> s.map { it.fileName.toString() }.filter { it.endsWith(".json") }.map { it.removeSuffix(".json") }.toList() }.toSet()
        assertEquals("fixtures without a Kotlin type, or types without a fixture", types.keys, files - dashboardOnly)
    }

    @Test
    fun `every field of every fixture is known to its Kotlin type`() {
        for ((name, type) in types) {
            val original = StudioJson.parseObject(read(name))
            val reserialized = withNulls.toJsonTree(StudioJson.fromJson(read(name), type))
            assertSameFields(name, original, reserialized)
        }
    }

    @Test
    fun `key fields of each fixture`() {
        val job = parse("Job", Job::class.java)
        assertEquals(JobState.FAILED, job.state)
        assertEquals("cuda_oom", job.error?.type)
        assertEquals(400, job.progress.maxSteps)
        assertEquals(0.875, checkNotNull(job.bestMetric?.get("eval/accuracy")), 0.0)
        assertEquals("reviews-sentiment", checkNotNull(job.spec).get("name").asString)
        assertNull(job.trainingArgs)
        val jobs = parse("JobList", JobList::class.java).jobs
        assertTrue("the job list shows an attached run too", jobs.any { it.kind == "attached" && it.trainingArgs != null })
        for (listed in jobs) {
            // contract: a managed job has a spec and no training_args; an attached run the other way round
            if (listed.kind == "attached") {
                assertNull(listed.spec)
            } else {
                assertNotNull(listed.spec)
                assertNull(listed.trainingArgs)
            }
        }
        assertEquals(listOf(0.69, null, 0.52), parse("Metrics", Metrics::class.java).series.getValue("train/loss").value)
        assertEquals("stderr", parse("LogLine", LogLine::class.java).stream)
        val event = parse("StreamEvent", StreamEvent::class.java)
        assertEquals(57L, event.seq)
        assertEquals(0.4811, checkNotNull(event.metric().values["train/loss"]), 0.0)
        val eval = StreamEvent(1, EventType.EVAL, 0.0, parse("ReporterEvent", ReporterEvent::class.java).data).eval()
        assertEquals(listOf("neg", "pos"), eval.labels)
        assertEquals(EventType.END, parse("IngestBatch", IngestBatch::class.java).events.last().type)
        assertEquals(1, parse("IngestResult", IngestResult::class.java).duplicates)
        val run = parse("RunCreate", RunCreate::class.java)
        assertEquals(4242L, run.pid)
        assertTrue(run.trainingArgs.isNotEmpty())
        val health = parse("Health", Health::class.java)
        assertEquals("ok", health.status)
        assertTrue(health.pid > 0)
        assertEquals("cuda", parse("Device", Device::class.java).kind)
        assertEquals(null, parse("SystemInfo", SystemInfo::class.java).devices.single().index)
        assertEquals(null, parse("StepBatch", StepBatch::class.java).examples.last().label)
        assertEquals(31337L, parse("ServerInfo", ServerInfo::class.java).pid)
        assertTrue(parse("EvalSample", EvalSample::class.java).prediction.isNotEmpty())
        val spec = parse("JobSpec", JobSpec::class.java)
        assertEquals("all", spec.resources.gpus.asString)
        assertEquals(3e-5, spec.training.learningRate, 0.0)
        assertEquals(listOf("query", "value"), spec.lora?.targetModules)
        val estimate = parse("Estimate", Estimate::class.java)
        assertEquals(8, estimate.suggested.get("training.batch_size").asInt)
        assertEquals(9000L * 1024 * 1024, estimate.memory?.evaluation)
        assertEquals(EstimateSummary(false, "28 GB of 22 GB on NVIDIA L4", "1h02m", estimate.warning, estimate.suggestion),
            EstimateSummary.of(estimate))
        val worktree = parse("WorktreeCheck", WorktreeCheck::class.java)
        assertEquals(false, worktree.matches)
        assertEquals(listOf(12L), worktree.dataChanged.single().changedRows)
        assertEquals("prepare.py", worktree.changedFiles.single().path)
        assertNull(parse("Lineage", Lineage::class.java).code?.files?.get("notes.bin"))
    }

    private fun assertSameFields(path: String, original: JsonElement, kotlin: JsonElement) {
        when {
            original.isJsonObject -> {
                if (!kotlin.isJsonObject) fail("$path: an object in the fixture, $kotlin in Kotlin")
                val k = kotlin.asJsonObject
                for ((key, value) in original.asJsonObject.entrySet()) {
                    if (!k.has(key)) fail("$path.$key: in the fixture but not in the Kotlin type (a new Python field?)")
                    assertSameFields("$path.$key", value, k.get(key))
                }
            }
            original.isJsonArray -> {
                assertTrue("$path: an array in the fixture", kotlin.isJsonArray)
                original.asJsonArray.zip(kotlin.asJsonArray).forEachIndexed { i, (o, k) -> assertSameFields("$path[$i]", o, k) }
            }
            original.isJsonNull -> assertTrue("$path: null in the fixture, $kotlin in Kotlin", kotlin.isJsonNull)
            else -> assertEquals("$path: value", original.asJsonPrimitive.asString.toDoubleOrNull() ?: original.asString,
                kotlin.asJsonPrimitive.asString.toDoubleOrNull() ?: kotlin.asString)
        }
    }

    private fun findFixtures(): Path {
        System.getProperty("finetunestudio.wireFixtures")?.let { return Path.of(it) }
        var dir: Path? = Path.of("").toAbsolutePath()
        while (dir != null) {
            val candidate = dir.resolve("tests/fixtures/wire")
            if (Files.isDirectory(candidate)) return candidate
            dir = dir.parent
        }
        fail("no tests/fixtures/wire above ${Path.of("").toAbsolutePath()}: run `pytest tests/test_wire.py` to write it")
        throw IllegalStateException()
    }

}
