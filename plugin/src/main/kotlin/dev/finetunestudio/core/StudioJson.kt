package dev.finetunestudio.core

import com.google.gson.FieldNamingPolicy
import com.google.gson.Gson
import com.google.gson.GsonBuilder
import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonParser
import com.google.gson.JsonSyntaxException
import com.google.gson.TypeAdapter
import com.google.gson.stream.JsonReader
import com.google.gson.stream.JsonWriter

/**
 * The one Gson configuration of the plugin: snake_case on the wire, camelCase in Kotlin.
 * Gson comes from the platform at run time (it is an embedded platform library), so it is never bundled.
 */
object StudioJson {
    val gson: Gson = GsonBuilder()
        .setFieldNamingPolicy(FieldNamingPolicy.LOWER_CASE_WITH_UNDERSCORES)
        // keep NaN-free doubles as they are; the server never sends NaN (it sends null instead)
        .disableHtmlEscaping()
        .create()

    fun toJson(value: Any): String = gson.toJson(value)

    fun toTree(value: Any): JsonElement = gson.toJsonTree(value)

    fun <T> fromJson(text: String, type: Class<T>): T =
        gson.fromJson(text, type) ?: throw JsonSyntaxException("empty JSON where a ${type.simpleName} was expected")

    fun <T> fromTree(tree: JsonElement, type: Class<T>): T =
        gson.fromJson(tree, type) ?: throw JsonSyntaxException("null where a ${type.simpleName} was expected")

    fun parseObject(text: String): JsonObject {
        val element = JsonParser.parseString(text)
        if (!element.isJsonObject) throw JsonSyntaxException("expected a JSON object, got: ${text.take(80)}")
        return element.asJsonObject
    }
}

/**
 * For a JsonObject property that is null on the wire for some objects (`Job.spec` of an attached run):
 * `@field:JsonAdapter(JsonObjectAdapter::class)` (null-safe by default) reads a JSON null as null, where
 * Gson's built-in JsonElement adapter, which no registered adapter can replace, refuses it.
 */
class JsonObjectAdapter : TypeAdapter<JsonObject>() {
    override fun read(reader: JsonReader): JsonObject {
        val element = JsonParser.parseReader(reader)
        if (!element.isJsonObject) throw JsonSyntaxException("expected a JSON object at ${reader.path}, got $element")
        return element.asJsonObject
    }

    override fun write(out: JsonWriter, value: JsonObject) = writeElement(out, value)

    private fun writeElement(out: JsonWriter, element: JsonElement) {
        when {
            element.isJsonNull -> out.nullValue()
            element.isJsonObject -> {
                out.beginObject()
                for ((key, child) in element.asJsonObject.entrySet()) writeElement(out.name(key), child)
                out.endObject()
            }
            element.isJsonArray -> {
                out.beginArray()
                for (child in element.asJsonArray) writeElement(out, child)
                out.endArray()
            }
            else -> element.asJsonPrimitive.let {
                when {
                    it.isBoolean -> out.value(it.asBoolean)
                    it.isNumber -> out.value(it.asNumber)
                    else -> out.value(it.asString)
                }
            }
        }
    }
}
