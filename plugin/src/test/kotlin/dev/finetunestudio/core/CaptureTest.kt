package dev.finetunestudio.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

class CaptureTest {
    @Test
    fun `the expression imports the package without touching the user's namespace`() {
        assertEquals(
            "__import__(\"finetune_studio.debug\").debug.capture((outputs.attentions), name=\"outputs.attentions\")",
            Capture.expression("outputs.attentions", "outputs.attentions"),
        )
    }

    @Test
    fun `names with quotes, backslashes and non-ASCII become safe Python literals`() {
        assertEquals("\"d[\\\"k\\\"]\\\\n\\u00e9\\n\"", Capture.pythonString("d[\"k\"]\\né\n"))
        assertEquals("\"__pydevd_ret_val_dict['f']\"", Capture.pythonString("__pydevd_ret_val_dict['f']"))
    }

    @Test
    fun `reads the returned JSON as sent or as a repr`() {
        val raw = """{"id": "t-12", "url": "/#tensor=t-12", "summary": "tensor[2, 8, 16, 16] f32 x∈[0, 0.93] μ=0.062"}"""
        val result = Capture.parseResult(raw)
        assertEquals(CaptureResult("t-12", "/#tensor=t-12", "tensor[2, 8, 16, 16] f32 x∈[0, 0.93] μ=0.062", null), result)
        assertEquals(result, Capture.parseResult("'" + raw.replace("\\", "\\\\") + "'"))
        assertEquals("a'b", Capture.parseResult("""'{"id": "x", "summary": "a\'b"}'""").summary)
    }

    @Test
    fun `a capture without a server keeps the summary and the reason`() {
        val result = Capture.parseResult("""{"id": null, "url": null, "summary": {"text": "ndarray[3] f64"}, "reason": "no server"}""")
        assertNull(result.id)
        assertEquals("ndarray[3] f64", result.summary)
        assertEquals("no server", result.reason)
    }

    @Test(expected = IllegalArgumentException::class)
    fun `a non-JSON answer is an error`() {
        Capture.parseResult("<tensor object at 0x7f>")
    }

    @Test
    fun `the action applies to tensors, arrays, tuples and model outputs`() {
        assertTrue(Capture.isInspectable("Tensor", "torch"))
        assertTrue(Capture.isInspectable("Parameter", "torch.nn.parameter"))
        assertTrue(Capture.isInspectable("ndarray", "numpy"))
        assertTrue(Capture.isInspectable("tuple", "builtins"))
        assertTrue(Capture.isInspectable("SequenceClassifierOutput", "transformers.modeling_outputs"))
        assertFalse(Capture.isInspectable("int", "builtins"))
        assertFalse(Capture.isInspectable("str", ""))
        assertFalse(Capture.isInspectable("RunOutput", "mylib"))
        assertFalse(Capture.isInspectable(null, null))
        assertTrue(Capture.isMissingPackage("ModuleNotFoundError: No module named 'finetune_studio'"))
    }
}
