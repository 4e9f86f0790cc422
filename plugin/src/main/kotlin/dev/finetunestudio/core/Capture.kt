package dev.finetunestudio.core

import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonParseException

/** What `finetune_studio.debug.capture` returned: the capture's id and page, or only a summary and why. */
data class CaptureResult(
    val id: String? = null,
    val url: String? = null,
    /** The one-line text form of the summary (or the summary object's text, when it sends one). */
    val summary: String = "",
    /** Why nothing was stored (no server, too large...), when [id] is null. */
    val reason: String? = null,
)

/**
 * The debugger side of "Inspect in Fine-Tune Studio": the Python expression evaluated in the debuggee,
 * and the reading of its answer. Platform-free so that the quoting is unit-tested.
 */
object Capture {
    /**
     * `__import__("finetune_studio.debug").debug.capture(<expr>, name="<name>")`: `__import__` keeps the
     * user's namespace clean (no `import` statement, which the evaluator would run as code), and returns the
     * top package, hence `.debug`. [name] becomes a Python string literal.
     */
    fun expression(valueExpression: String, name: String): String =
        "__import__(\"${BackendCommand.MODULE}.debug\").debug.capture(($valueExpression), name=${pythonString(name)})"

    /** A double-quoted Python literal of [text], safe for any characters (non-ASCII as \u escapes). */
    fun pythonString(text: String): String = buildString {
        append('"')
        for (c in text) {
            when {
                c == '\\' -> append("\\\\")
                c == '"' -> append("\\\"")
                c == '\n' -> append("\\n")
                c == '\r' -> append("\\r")
                c == '\t' -> append("\\t")
                c.code < 0x20 || c.code > 0x7e -> append("\\u%04x".format(c.code))
                else -> append(c)
            }
        }
        append('"')
    }

    /**
     * Reads the value the debugger reports for the returned str. pydevd sends a str's text as is, but a
     * frontend may show its repr (`'...'`), so a quoted form is unwrapped too.
     */
    fun parseResult(value: String): CaptureResult {
        val text = unquote(value.trim())
        val json = try {
            StudioJson.parseObject(text)
        } catch (e: JsonParseException) {
            throw IllegalArgumentException("capture() returned something that is not JSON: ${text.take(200)}", e)
        } catch (e: IllegalStateException) {
            throw IllegalArgumentException("capture() returned something that is not JSON: ${text.take(200)}", e)
        }
        return CaptureResult(
            id = json.str("id"),
            url = json.str("url"),
            summary = summaryText(json.get("summary")),
            reason = json.str("reason") ?: json.str("error"),
        )
    }

    /** True when the debuggee's error says the package is not installed in its interpreter. */
    fun isMissingPackage(error: String): Boolean = BackendCommand.isMissingPackage(error)

    /**
     * Whether the Variables-view action applies to a value of this pydevd type: tensors and arrays, tuples
     * and lists (attention weights come as a tuple per layer), and transformers' model outputs.
     */
    fun isInspectable(type: String?, typeQualifier: String?): Boolean {
        val qualifier = typeQualifier.orEmpty()
        return when {
            type == null -> false
            type in TENSOR_TYPES -> true
            type == "tuple" || type == "list" -> true
            qualifier.startsWith("transformers.") && (type.endsWith("Output") || type == "ModelOutput") -> true
            else -> false
        }
    }

    private val TENSOR_TYPES = setOf("Tensor", "Parameter", "ndarray", "EagerTensor", "ResourceVariable")

    private fun unquote(text: String): String {
        if (text.length < 2) return text
        val quote = text.first()
        if ((quote != '\'' && quote != '"') || text.last() != quote) return text
        val inner = text.substring(1, text.length - 1)
        val out = StringBuilder(inner.length)
        var i = 0
        while (i < inner.length) {
            val c = inner[i]
            if (c == '\\' && i + 1 < inner.length) {
                val next = inner[i + 1]
                out.append(
                    when (next) {
                        'n' -> '\n'
                        't' -> '\t'
                        'r' -> '\r'
                        else -> next // \\, \' and \" stand for themselves
                    },
                )
                i += 2
            } else {
                out.append(c)
                i++
            }
        }
        return out.toString()
    }

    private fun summaryText(element: JsonElement?): String = when {
        element == null || element.isJsonNull -> ""
        element.isJsonPrimitive -> element.asString
        element.isJsonObject -> (element.asJsonObject.str("text") ?: element.toString())
        else -> element.toString()
    }

    private fun JsonObject.str(key: String): String? = get(key)?.takeIf { it.isJsonPrimitive }?.asString
}
