package dev.finetunestudio.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Test

class ConsoleLinesTest {
    private fun event(type: String, data: String) = StreamEvent(1, type, 0.0, StudioJson.parseObject(data))

    @Test
    fun `metric, eval and progress lines`() {
        assertEquals(
            ConsoleLine("step 20  loss=0.4811  learning_rate=2.700e-05  grad_norm=nan"),
            ConsoleLines.of(event("metric", """{"step": 20, "values": {"loss": 0.4811, "learning_rate": 2.7e-05, "grad_norm": null}}""")),
        )
        assertEquals(
            "eval @ step 100  eval_accuracy=0.875  eval_loss=3",
            ConsoleLines.of(event("eval", """{"step": 100, "values": {"eval_accuracy": 0.875, "eval_loss": 3.0}}"""))?.text,
        )
        assertEquals(
            ConsoleLine("[ 30%] step 120/400  epoch 0.60  58.3 samples/s  ETA 8m01s", isSystem = true),
            ConsoleLines.of(event("progress", """{"step": 120, "max_steps": 400, "epoch": 0.6, "samples_per_second": 58.3, "eta_seconds": 481.5}""")),
        )
    }

    @Test
    fun `log lines keep their stream`() {
        assertEquals(ConsoleLine("Traceback", isError = true), ConsoleLines.of(event("log", """{"seq": 1, "time": 0, "stream": "stderr", "text": "Traceback"}""")))
        assertEquals(ConsoleLine("Epoch 1"), ConsoleLines.of(event("log", """{"seq": 2, "time": 0, "stream": "stdout", "text": "Epoch 1"}""")))
        assertNull(ConsoleLines.of(event("system", """{"values": {}}""")))
    }

    @Test
    fun `state lines carry the error and its hint`() {
        val failed = ConsoleLines.of(event("state", """{"id": "j", "name": "demo", "state": "failed",
            "error": {"type": "cuda_oom", "message": "CUDA out of memory", "hint": "lower batch_size"}}"""))
        assertEquals(ConsoleLine("job demo is failed: CUDA out of memory\nhint: lower batch_size", isError = true), failed)
        val done = ConsoleLines.state(Job(id = "j", name = "demo", state = JobState.COMPLETED, outputDir = "/out"))
        assertEquals(ConsoleLine("job demo is completed; model saved in /out", isSystem = true), done)
        assertEquals("job j is running on cuda:0", ConsoleLines.state(Job(id = "j", state = JobState.RUNNING, device = "cuda:0")).text)
    }

    @Test
    fun `numbers and durations read like the Trainer's`() {
        assertEquals("0", ConsoleLines.number(0.0))
        assertEquals("1234", ConsoleLines.number(1234.0))
        assertEquals("1.235e+05", ConsoleLines.number(123456.0))
        assertEquals("-0.5", ConsoleLines.number(-0.5))
        assertEquals("45s", ConsoleLines.duration(45.9))
        assertEquals("1h02m", ConsoleLines.duration(3720.0))
    }
}
