package dev.finetunestudio.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.nio.file.Files
import java.nio.file.Path

/**
 * The editor's checks of finetune.toml against the shipped schema. Expected messages are the server's, as
 * `problems_of` words them (each taken from a run of spec.py on the same input).
 */
class SpecCheckTest {
    @get:Rule
    val temp = TemporaryFolder()

    private val schema = SpecSchema.parse(shippedSchema())

    @Test
    fun `difflib's ratio and close match, as Python computes them`() {
        assertEquals(0.75, CloseMatches.ratio("abcd", "bcde"), 1e-12)
        assertEquals(0.8333333333333334, CloseMatches.ratio("epochs", "epohcs"), 1e-12)
        assertEquals(0.7, CloseMatches.ratio("eval_steps", "save_steps"), 1e-12)
        assertEquals(0.8571428571428571, CloseMatches.ratio("abxcdyab", "abcdab"), 1e-12)
        assertEquals(0.9615384615384616, CloseMatches.ratio("gradient_accumulation_steps", "gradient_acumulation_step"), 1e-12)
        assertEquals(0.0, CloseMatches.ratio("", "x"), 0.0)
        // a tie goes to the greatest string, as heapq.nlargest((score, x)) picks it, whatever the order
        assertEquals("save_steps", CloseMatches.closest("xxxx_steps", listOf("eval_steps", "save_steps")))
        assertEquals("save_steps", CloseMatches.closest("xxxx_steps", listOf("save_steps", "eval_steps")))
    }

    @Test
    fun `an unknown key gets the server's did you mean`() {
        // difflib.get_close_matches(word, fields, n=1, cutoff=0.6) for each of these, run in Python
        val expected = mapOf(
            listOf("training", "epohcs") to "epochs",
            listOf("training", "batchsize") to "batch_size",
            listOf("training", "learnig_rate") to "learning_rate",
            listOf("training", "eval_step") to "eval_steps",
            listOf("training", "steps") to "max_steps",
            listOf("training", "warmup") to "warmup_steps",
            listOf("modle") to "model",
            listOf("trainig") to "training",
        )
        for ((path, close) in expected) {
            assertEquals(path.toString(), SpecSchema.Lookup.Unknown(path.size - 1, "unknown key; did you mean '$close'?"), schema.lookup(path))
        }
        val none = schema.lookup(listOf("zzz")) as SpecSchema.Lookup.Unknown
        // every top-level key, in the model's order (the list grows with the spec)
        assertTrue(none.message, none.message.startsWith("unknown key; expected one of: name, task, model, data, training, lora, resources"))
        assertEquals(SpecSchema.Lookup.Unknown(0, "unknown key; did you mean 'training'?"), schema.lookup(listOf("trainig", "epochs")))
    }

    @Test
    fun `known keys, lora's optional table and free args pass`() {
        assertTrue(schema.lookup(listOf("training", "epochs")) is SpecSchema.Lookup.Known)
        assertTrue(schema.lookup(listOf("lora", "r")) is SpecSchema.Lookup.Known)
        assertEquals(SpecSchema.Lookup.Free, schema.lookup(listOf("training", "args", "anything_at_all")))
        assertEquals(SpecSchema.Lookup.Unknown(1, "unknown key; did you mean 'r'?"), schema.lookup(listOf("lora", "rr")))
    }

    @Test
    fun `wrong types get pydantic's words`() {
        fun check(path: String, value: SpecValue) = schema.valueProblem(path.split('.'), value)
        assertEquals("Input should be a valid number, unable to parse string as a number (got 'abc')", check("training.epochs", SpecValue.Text("abc")))
        assertEquals("Input should be a valid integer, got a number with a fractional part (got 2.5)", check("training.batch_size", SpecValue.number("2.5")))
        assertEquals("Input should be a valid integer, unable to parse string as an integer (got 'x')", check("training.batch_size", SpecValue.Text("x")))
        assertEquals("Input should be greater than or equal to 1 (got 0)", check("training.batch_size", SpecValue.number("0")))
        assertEquals("Input should be 'auto', 'csv', 'json', 'parquet' or 'conll' (got 'xls')", check("data.format", SpecValue.Text("xls")))
        assertEquals("Input should be a valid boolean, unable to interpret input (got 'maybe')", check("training.gradient_checkpointing", SpecValue.Text("maybe")))
        assertEquals("Input should be a valid string (got 3)", check("name", SpecValue.number("3")))
        assertEquals("Input should be '4bit' (got '8bit')", check("lora.quantize", SpecValue.Text("8bit")))
        assertEquals("Input should be a valid dictionary or instance of TrainingSpec", check("training", SpecValue.Text("x")))
        assertEquals("Input should be a valid list (got 'q')", check("lora.target_modules", SpecValue.Text("q")))
        assertEquals("Input should be less than 1 (got 2)", check("training.learning_rate", SpecValue.number("2")))
        assertEquals("Input should be less than 1 (got 1.5)", check("data.eval_fraction", SpecValue.number("1.5")))
        assertEquals("item 0: Input should be a valid string (got 1)", check("lora.target_modules", SpecValue.Array(listOf(SpecValue.number("1")))))
        assertEquals("Input should be a valid integer or 'all' (got 'two')", check("resources.gpus", SpecValue.Text("two")))
    }

    @Test
    fun `what pydantic's lax mode accepts is not flagged`() {
        fun ok(path: String, value: SpecValue) = assertNull("$path = ${value.repr}", schema.valueProblem(path.split('.'), value))
        ok("training.epochs", SpecValue.Bool(true))
        ok("training.batch_size", SpecValue.Bool(true))
        ok("training.learning_rate", SpecValue.Text("1e-4"))
        ok("training.learning_rate", SpecValue.number("2e-5"))
        ok("training.epochs", SpecValue.number("1_000"))
        ok("training.batch_size", SpecValue.number("0x10"))
        ok("training.gradient_checkpointing", SpecValue.Text("yes"))
        ok("training.gradient_checkpointing", SpecValue.number("1"))
        ok("resources.gpus", SpecValue.Text("all"))
        ok("resources.gpus", SpecValue.number("2"))
        ok("lora.target_modules", SpecValue.Array(listOf(SpecValue.Text("q_proj"))))
        ok("training", SpecValue.Table)
        ok("training.args.whatever", SpecValue.Text("free"))
        ok("trainig.epochs", SpecValue.Text("x")) // the unknown table is the problem, reported once
    }

    @Test
    fun `a table lacking a required key or holding both of a pair is named`() {
        assertEquals(listOf(SpecProblem("model", "required"), SpecProblem("data", "required")), schema.tableProblems(emptyList(), setOf("name")))
        assertEquals(listOf(SpecProblem("data.train", "required")), schema.tableProblems(listOf("data"), setOf("eval")))
        assertEquals(
            listOf(SpecProblem("data", "give either eval (a file) or eval_fraction, not both")),
            schema.tableProblems(listOf("data"), setOf("train", "eval", "eval_fraction")),
        )
        assertEquals(
            listOf(SpecProblem("training", "give either warmup_steps or warmup_ratio, not both")),
            schema.tableProblems(listOf("training"), setOf("warmup_steps", "warmup_ratio")),
        )
        assertEquals(emptyList<SpecProblem>(), schema.tableProblems(listOf("training", "args"), setOf("x")))
    }

    @Test
    fun `data files and model folders that do not exist are named as the server names them`() {
        val base = temp.root.toPath()
        Files.writeString(base.resolve("train.csv"), "text,label\n")
        Files.createDirectories(base.resolve("models/tiny"))
        Files.writeString(base.resolve("models/tiny/config.json"), "{}")
        Files.createDirectories(base.resolve("models/empty"))
        assertNull(SpecPaths.problem("data.train", "train.csv", base))
        assertEquals("no such file: ${base.resolve("eval.csv")}", SpecPaths.problem("data.eval", "./eval.csv", base))
        assertEquals("no such file: ${base.resolve("data")}", SpecPaths.problem("data.train", "data/../data", base))
        assertNull(SpecPaths.problem("model", "models/tiny", base))
        assertEquals("no such model folder: ${base.resolve("models/big")}", SpecPaths.problem("model", "./models/big", base))
        assertEquals(
            "${base.resolve("models/empty")} has no config.json: give a folder saved with save_pretrained()",
            SpecPaths.problem("model", "models/empty", base),
        )
        assertNull("a hub id is the server's to judge", SpecPaths.problem("model", "bert-base-uncased", base))
    }

    @Test
    fun `entries become the spec JSON with paths resolved against the TOML's folder`() {
        val base = temp.root.toPath()
        Files.createDirectories(base.resolve("tiny"))
        val spec = SpecJson.of(
            listOf(
                listOf("model") to SpecValue.Text("tiny"),
                listOf("data") to SpecValue.Table,
                listOf("data", "train") to SpecValue.Text("train.csv"),
                listOf("training", "batch_size") to SpecValue.number("8"),
                listOf("training", "learning_rate") to SpecValue.number("2e-5"),
                listOf("lora", "target_modules") to SpecValue.Array(listOf(SpecValue.Text("q"))),
            ),
            base,
        )
        assertEquals(base.resolve("tiny").toString(), spec.get("model").asString)
        assertEquals(base.resolve("train.csv").toString(), spec.getAsJsonObject("data").get("train").asString)
        assertEquals(8, spec.getAsJsonObject("training").get("batch_size").asInt)
        assertEquals(2e-5, spec.getAsJsonObject("training").get("learning_rate").asDouble, 0.0)
        assertEquals("[\"q\"]", spec.getAsJsonObject("lora").get("target_modules").toString())
        val hub = SpecJson.of(listOf(listOf("model") to SpecValue.Text("bert-base-uncased")), base)
        assertEquals("bert-base-uncased", hub.get("model").asString)
    }

    @Test
    fun `TOML numbers and Python reprs`() {
        assertEquals(SpecValue.Integer(1000), SpecValue.number("1_000"))
        assertEquals(SpecValue.Integer(-255), SpecValue.number("-0xff"))
        assertEquals(SpecValue.Integer(5), SpecValue.number("0b101"))
        assertTrue((SpecValue.number("inf") as SpecValue.Decimal).value.isInfinite())
        assertTrue((SpecValue.number("nan") as SpecValue.Decimal).value.isNaN())
        assertEquals("'it'", SpecValue.Text("it").repr)
        assertEquals("\"it's\"", SpecValue.Text("it's").repr)
        assertEquals("True", SpecValue.Bool(true).repr)
    }

    private fun shippedSchema(): String {
        System.getProperty("finetunestudio.schema")?.let { return Files.readString(Path.of(it)) }
        val resource = SpecSchema::class.java.getResourceAsStream(SpecSchema.RESOURCE)
            ?: error("set -Dfinetunestudio.schema or put ${SpecSchema.RESOURCE} on the test classpath")
        return resource.use { String(it.readAllBytes(), Charsets.UTF_8) }
    }
}
