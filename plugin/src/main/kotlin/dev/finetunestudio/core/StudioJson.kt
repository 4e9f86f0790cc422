package dev.finetunestudio.core

import com.google.gson.FieldNamingPolicy
import com.google.gson.Gson
import com.google.gson.GsonBuilder
import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonParser
import com.google.gson.JsonSyntaxException

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
