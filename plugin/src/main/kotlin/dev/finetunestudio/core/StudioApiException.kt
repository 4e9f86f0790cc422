package dev.finetunestudio.core

import com.google.gson.JsonElement
import com.google.gson.JsonParseException
import java.io.IOException

/**
 * The server answered with an error. The server's bodies look like `{"detail", "type", "hint"}` where
 * `detail` is a message, or for a bad job spec a list of `{"field", "msg"}` (FastAPI's own validation errors
 * are lists of `{"loc", "msg"}`); [message] joins them into one line that names each field.
 */
class StudioApiException(
    val status: Int,
    val type: String?,
    message: String,
    val hint: String?,
    /** "field: problem" per field, for 422 answers. */
    val problems: List<String> = emptyList(),
) : IOException(message) {

    val isUnauthorized: Boolean get() = status == 401

    companion object {
        fun fromResponse(status: Int, body: String): StudioApiException {
            val json = try {
                StudioJson.parseObject(body)
            } catch (e: JsonParseException) {
                return StudioApiException(status, null, "HTTP $status: ${body.take(300).ifBlank { "(no body)" }}", null)
            } catch (e: IllegalStateException) {
                return StudioApiException(status, null, "HTTP $status: ${body.take(300)}", null)
            }
            val detail = json.get("detail")
            val problems = if (detail != null && detail.isJsonArray) detail.asJsonArray.map(::problemOf) else emptyList()
            val message = when {
                problems.isNotEmpty() -> problems.joinToString("; ")
                detail != null && detail.isJsonPrimitive -> detail.asString
                else -> "HTTP $status"
            }
            return StudioApiException(status, json.stringOrNull("type"), message, json.stringOrNull("hint"), problems)
        }

        private fun problemOf(item: JsonElement): String {
            if (!item.isJsonObject) return item.toString()
            val obj = item.asJsonObject
            val field = obj.stringOrNull("field")
                ?: obj.get("loc")?.takeIf { it.isJsonArray }?.asJsonArray
                    ?.filter { it.isJsonPrimitive && it.asString != "body" }
                    ?.joinToString(".") { it.asString }
            val msg = obj.stringOrNull("msg") ?: obj.toString()
            return if (field.isNullOrEmpty()) msg else "$field: $msg"
        }

        private fun com.google.gson.JsonObject.stringOrNull(key: String): String? =
            get(key)?.takeIf { it.isJsonPrimitive }?.asString
    }
}
