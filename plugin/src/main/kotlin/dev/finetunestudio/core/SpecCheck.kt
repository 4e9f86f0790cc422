package dev.finetunestudio.core

import com.google.gson.JsonElement
import com.google.gson.JsonObject
import java.math.BigDecimal
import java.nio.file.Files
import java.nio.file.InvalidPathException
import java.nio.file.Path

/** A value of `finetune.toml` as the editor parsed it; [repr] is how Python's `repr` would show it. */
sealed interface SpecValue {
    val repr: String

    data class Text(val value: String) : SpecValue {
        override val repr: String get() = pythonRepr(value)
    }

    data class Integer(val value: Long) : SpecValue {
        override val repr: String get() = value.toString()
    }

    /** [text] as written (Python would print 1e-05 where TOML says 1e-5: close enough for a message). */
    data class Decimal(val value: Double, val text: String) : SpecValue {
        override val repr: String get() = text
    }

    data class Bool(val value: Boolean) : SpecValue {
        override val repr: String get() = if (value) "True" else "False"
    }

    data class Array(val items: List<SpecValue>) : SpecValue {
        override val repr: String get() = items.joinToString(", ", "[", "]") { it.repr }
    }

    data object Table : SpecValue {
        override val repr: String get() = "{...}"
    }

    data object DateTime : SpecValue {
        override val repr: String get() = "datetime"
    }

    companion object {
        /** A TOML number as written: integers (decimal, hex, octal, binary, with `_`) or floats (`inf`, `nan` too). */
        fun number(text: String): SpecValue {
            val plain = text.replace("_", "")
            val sign = if (plain.startsWith("-")) -1 else 1
            val digits = plain.removePrefix("+").removePrefix("-")
            val radix = when {
                digits.startsWith("0x") -> 16
                digits.startsWith("0o") -> 8
                digits.startsWith("0b") -> 2
                else -> 10
            }
            if (radix != 10) digits.drop(2).toLongOrNull(radix)?.let { return Integer(sign * it) }
            plain.toLongOrNull()?.let { return Integer(it) }
            val double = when (digits) {
                "inf" -> sign * Double.POSITIVE_INFINITY
                "nan" -> Double.NaN
                else -> plain.toDoubleOrNull() ?: Double.NaN
            }
            return Decimal(double, text)
        }

        /** Python's repr of a str: single quotes unless the text holds one and no double quote. */
        fun pythonRepr(text: String): String {
            val quote = if ('\'' in text && '"' !in text) '"' else '\''
            val body = buildString {
                for (c in text) when {
                    c == '\\' -> append("\\\\")
                    c == quote -> append('\\').append(c)
                    c == '\n' -> append("\\n")
                    c == '\t' -> append("\\t")
                    c == '\r' -> append("\\r")
                    else -> append(c)
                }
            }
            return "$quote$body$quote"
        }
    }
}

/** One problem of a spec, as the server reports it: the dotted field and the message. */
data class SpecProblem(val field: String, val message: String)

/**
 * Checks the keys and values of `finetune.toml` against the JSON Schema of `JobSpec` (the one shipped in the
 * plugin, generated from the Python model), with the server's words: an unknown key gets spec.py's
 * `_did_you_mean` ("unknown key; did you mean 'epochs'?", difflib's cutoff 0.6 through [CloseMatches]),
 * a wrong value pydantic's message with " (got <repr>)". What pydantic's lax mode accepts passes here too
 * (`"2e-5"` for a float, `1` for a bool), so the editor never flags a spec the server takes.
 */
class SpecSchema(private val root: JsonObject) {
    /** Where a key path leads in the schema. */
    sealed interface Lookup {
        data class Known(val schema: JsonObject) : Lookup
        /** Below a free-form table (`[training.args]`) or a value that is not a table: nothing to check. */
        data object Free : Lookup
        /** The key at [index] of the path is unknown; [message] is the server's. */
        data class Unknown(val index: Int, val message: String) : Lookup
    }

    fun lookup(path: List<String>): Lookup {
        var schema = root
        for ((index, key) in path.withIndex()) {
            val table = tableSchema(schema) ?: return Lookup.Free
            val properties = table.getAsJsonObject("properties") ?: JsonObject()
            val child = properties.get(key)
            if (child == null || !child.isJsonObject) {
                val additional = table.get("additionalProperties")
                val forbidden = additional != null && additional.isJsonPrimitive && additional.asJsonPrimitive.isBoolean && !additional.asBoolean
                return if (forbidden) Lookup.Unknown(index, didYouMean(key, properties.keySet())) else Lookup.Free
            }
            schema = deref(child.asJsonObject)
        }
        return Lookup.Known(schema)
    }

    /** The server's message for [value] at [path], or null when it is valid (or the key is unknown or free). */
    fun valueProblem(path: List<String>, value: SpecValue): String? {
        val found = lookup(path) as? Lookup.Known ?: return null
        return problem(found.schema, value)
    }

    /**
     * Problems of a whole table at [path] holding [keys]: required keys that are missing, and the pairs
     * spec.py's validators refuse together.
     */
    fun tableProblems(path: List<String>, keys: Set<String>): List<SpecProblem> {
        val found = lookup(path) as? Lookup.Known ?: return emptyList()
        val table = tableSchema(found.schema) ?: return emptyList()
        val prefix = if (path.isEmpty()) "" else path.joinToString(".", postfix = ".")
        val problems = table.getAsJsonArray("required")?.map { it.asString }?.filter { it !in keys }
            ?.map { SpecProblem(prefix + it, "required") }.orEmpty().toMutableList()
        // mirrors the model validators of DataSpec and TrainingSpec in backend/finetune_studio/spec.py
        val field = path.joinToString(".")
        if (path == listOf("data") && "eval" in keys && "eval_fraction" in keys) {
            problems += SpecProblem(field, "give either eval (a file) or eval_fraction, not both")
        }
        if (path == listOf("training") && "warmup_steps" in keys && "warmup_ratio" in keys) {
            problems += SpecProblem(field, "give either warmup_steps or warmup_ratio, not both")
        }
        return problems
    }

    /** A key's description from the schema, for hover texts. */
    fun description(path: List<String>): String? =
        (lookup(path) as? Lookup.Known)?.schema?.get("description")?.takeIf { it.isJsonPrimitive }?.asString

    private fun problem(schema: JsonObject, value: SpecValue): String? {
        val alternatives = alternatives(schema)
        if (alternatives.size > 1) {
            if (alternatives.any { problem(it, value) == null }) return null
            return "Input should be ${alternatives.joinToString(" or ") { expected(it) }} (got ${value.repr})"
        }
        val single = alternatives.single()
        val enum = single.getAsJsonArray("enum")?.map { it.asString } ?: single.get("const")?.let { listOf(it.asString) }
        if (enum != null) {
            return if (value is SpecValue.Text && value.value in enum) null else "Input should be ${choices(enum)} (got ${value.repr})"
        }
        val type = single.get("type")?.takeIf { it.isJsonPrimitive }?.asString
        return when (type) {
            "string" -> if (value is SpecValue.Text) null else "Input should be a valid string (got ${value.repr})"
            "integer" -> integerProblem(value) ?: bounds(single, numberOf(value))
            "number" -> numberProblem(value) ?: bounds(single, numberOf(value))
            "boolean" -> booleanProblem(value)
            "array" -> arrayProblem(single, value)
            "object" -> when {
                value is SpecValue.Table -> null
                single.has("properties") -> "Input should be a valid dictionary or instance of ${single.get("title")?.asString ?: "a table"}"
                else -> "Input should be a valid dictionary (got ${value.repr})"
            }
            else -> null // no type: anything goes
        }?.let { if (it.contains(" (got ") || it.startsWith("Input should be a valid dictionary or instance")) it else "$it (got ${value.repr})" }
    }

    private fun integerProblem(value: SpecValue): String? = when (value) {
        is SpecValue.Integer, is SpecValue.Bool -> null
        is SpecValue.Decimal -> when {
            value.value.isNaN() || value.value.isInfinite() -> "Input should be a finite number"
            value.value % 1.0 != 0.0 -> "Input should be a valid integer, got a number with a fractional part"
            else -> null
        }
        is SpecValue.Text -> if (value.value.trim().toLongOrNull() != null) null
        else "Input should be a valid integer, unable to parse string as an integer"
        else -> "Input should be a valid integer"
    }

    private fun numberProblem(value: SpecValue): String? = when (value) {
        is SpecValue.Integer, is SpecValue.Decimal, is SpecValue.Bool -> null
        is SpecValue.Text -> if (value.value.trim().toDoubleOrNull() != null) null
        else "Input should be a valid number, unable to parse string as a number"
        else -> "Input should be a valid number"
    }

    private fun booleanProblem(value: SpecValue): String? = when (value) {
        is SpecValue.Bool -> null
        is SpecValue.Integer -> if (value.value == 0L || value.value == 1L) null
        else "Input should be a valid boolean, unable to interpret input"
        is SpecValue.Text -> if (value.value.lowercase() in BOOLEAN_WORDS) null
        else "Input should be a valid boolean, unable to interpret input"
        else -> "Input should be a valid boolean"
    }

    private fun arrayProblem(schema: JsonObject, value: SpecValue): String? {
        if (value !is SpecValue.Array) return "Input should be a valid list"
        val items = schema.getAsJsonObject("items")?.let(::deref) ?: return null
        for ((index, item) in value.items.withIndex()) {
            problem(items, item)?.let { return "item $index: $it" }
        }
        return null
    }

    /** pydantic's ge/gt/le/lt messages; the bound as the schema writes it. */
    private fun bounds(schema: JsonObject, number: Double?): String? {
        if (number == null || number.isNaN()) return null
        fun bound(key: String): Pair<Double, String>? =
            schema.get(key)?.takeIf { it.isJsonPrimitive }?.asJsonPrimitive?.let { it.asDouble to plain(it.asNumber) }
        bound("minimum")?.let { (b, text) -> if (number < b) return "Input should be greater than or equal to $text" }
        bound("exclusiveMinimum")?.let { (b, text) -> if (number <= b) return "Input should be greater than $text" }
        bound("maximum")?.let { (b, text) -> if (number > b) return "Input should be less than or equal to $text" }
        bound("exclusiveMaximum")?.let { (b, text) -> if (number >= b) return "Input should be less than $text" }
        return null
    }

    private fun numberOf(value: SpecValue): Double? = when (value) {
        is SpecValue.Integer -> value.value.toDouble()
        is SpecValue.Decimal -> value.value
        is SpecValue.Bool -> if (value.value) 1.0 else 0.0
        is SpecValue.Text -> value.value.trim().toDoubleOrNull()
        else -> null
    }

    /** How an alternative of a union reads in "Input should be X or Y". */
    private fun expected(schema: JsonObject): String {
        schema.getAsJsonArray("enum")?.let { return choices(it.map(JsonElement::getAsString)) }
        schema.get("const")?.let { return choices(listOf(it.asString)) }
        return when (schema.get("type")?.asString) {
            "string" -> "a valid string"
            "integer" -> "a valid integer"
            "number" -> "a valid number"
            "boolean" -> "a valid boolean"
            "array" -> "a valid list"
            else -> "a valid dictionary"
        }
    }

    /** The union's alternatives, without `null` (TOML has none). */
    private fun alternatives(schema: JsonObject): List<JsonObject> {
        val anyOf = schema.getAsJsonArray("anyOf") ?: return listOf(schema)
        return anyOf.map { deref(it.asJsonObject) }.filter { it.get("type")?.asString != "null" }.ifEmpty { listOf(schema) }
    }

    /** The object schema [schema] stands for (through `$ref` and `anyOf`), or null for a scalar. */
    private fun tableSchema(schema: JsonObject): JsonObject? =
        alternatives(deref(schema)).firstOrNull { it.has("properties") || it.get("type")?.asString == "object" }

    private fun deref(schema: JsonObject): JsonObject {
        val ref = schema.get("\$ref")?.asString ?: return schema
        require(ref.startsWith(DEFS)) { "unsupported \$ref $ref in the job spec schema" }
        return root.getAsJsonObject("\$defs").getAsJsonObject(ref.removePrefix(DEFS))
    }

    companion object {
        private const val DEFS = "#/\$defs/"
        /** The strings pydantic's lax mode reads as a bool. */
        private val BOOLEAN_WORDS = setOf("0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes")
        /** Where the plugin ships the schema (written by plugin/scripts/job_spec_schema.py). */
        const val RESOURCE = "/schemas/finetune.schema.json"

        fun parse(json: String): SpecSchema = SpecSchema(StudioJson.parseObject(json))

        /** spec.py's `_did_you_mean`, word for word. */
        fun didYouMean(unknown: String, keys: Collection<String>): String {
            val close = CloseMatches.closest(unknown, keys)
            return if (close != null) "unknown key; did you mean ${SpecValue.pythonRepr(close)}?"
            else "unknown key; expected one of: ${keys.joinToString(", ")}"
        }

        /** pydantic's list of literals: 'a', 'b' or 'c'. */
        private fun choices(values: List<String>): String {
            val quoted = values.map(SpecValue::pythonRepr)
            return if (quoted.size == 1) quoted.single() else quoted.dropLast(1).joinToString(", ") + " or " + quoted.last()
        }

        private fun plain(number: Number): String = BigDecimal(number.toString()).stripTrailingZeros().toPlainString()
    }
}

/**
 * The data files and model folder of a spec, checked where the server checks them at submit
 * (`check_files` in spec.py), with its messages. Relative paths resolve against the TOML's folder.
 */
object SpecPaths {
    /** The keys whose values are paths. */
    val FIELDS: Set<String> = setOf("data.train", "data.eval", "model")

    /** The server's message for [field] = [value] in a TOML in [baseDir], or null when it is fine (or a hub id). */
    fun problem(field: String, value: String, baseDir: Path): String? {
        val resolved = try {
            resolved(value, baseDir)
        } catch (e: InvalidPathException) {
            return "not a valid path: $value"
        }
        return when (field) {
            "data.train", "data.eval" -> if (Files.isRegularFile(resolved)) null else "no such file: $resolved"
            "model" -> when {
                !isModelPath(value, baseDir) -> null // a hub id: the server decides, knowing its cache
                !Files.isDirectory(resolved) -> "no such model folder: $resolved"
                !Files.isRegularFile(resolved.resolve("config.json")) && !Files.isRegularFile(resolved.resolve("adapter_config.json")) ->
                    "$resolved has no config.json: give a folder saved with save_pretrained()"
                else -> null
            }
            else -> null
        }
    }

    /** spec.py's `_looks_like_path`: a model value that starts like a path, or names something that exists. */
    fun isModelPath(value: String, baseDir: Path): Boolean = value.startsWith(".") || value.startsWith("/") || value.startsWith("~") ||
        try {
            Path.of(value).isAbsolute || Files.exists(resolved(value, baseDir))
        } catch (e: InvalidPathException) {
            false
        }

    /** [value] against [baseDir], `~` expanded (spec.py's `_resolve`, without following links). */
    fun resolved(value: String, baseDir: Path): Path {
        val expanded = if (value == "~" || value.startsWith("~/")) System.getProperty("user.home") + value.drop(1) else value
        return baseDir.resolve(expanded).normalize()
    }
}
