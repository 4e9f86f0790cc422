package dev.finetunestudio.schema

import com.intellij.psi.PsiElement
import com.intellij.psi.PsiFile
import dev.finetunestudio.core.SpecValue
import org.toml.lang.psi.TomlArray
import org.toml.lang.psi.TomlArrayTable
import org.toml.lang.psi.TomlInlineTable
import org.toml.lang.psi.TomlKey
import org.toml.lang.psi.TomlKeyValue
import org.toml.lang.psi.TomlLiteral
import org.toml.lang.psi.TomlTable
import org.toml.lang.psi.TomlValue
import org.toml.lang.psi.ext.TomlLiteralKind
import org.toml.lang.psi.ext.kind

/**
 * The TOML PSI of `finetune.toml` read as key paths and [SpecValue]s, the only place that knows the TOML
 * plugin's classes (org.toml.lang.psi); the checks themselves are the core's [dev.finetunestudio.core.SpecSchema].
 */
object TomlSpecEntries {
    fun names(key: TomlKey?): List<String> = key?.segments.orEmpty().map { it.name.orEmpty() }

    /**
     * The path of the table [keyValue] sits in: a `[table]`'s header, an inline table's key, or the root;
     * null where the schema has nothing to say (inside arrays).
     */
    fun prefixOf(keyValue: TomlKeyValue): List<String>? = when (val parent = keyValue.parent) {
        is TomlTable -> names(parent.header.key)
        is TomlArrayTable -> null
        is TomlInlineTable -> (parent.parent as? TomlKeyValue)?.let { owner -> prefixOf(owner)?.plus(names(owner.key)) }
        else -> emptyList()
    }

    fun valueOf(value: TomlValue): SpecValue = when (value) {
        is TomlInlineTable -> SpecValue.Table
        is TomlArray -> SpecValue.Array(value.elements.map(::valueOf))
        is TomlLiteral -> when (val kind = value.kind) {
            is TomlLiteralKind.String -> SpecValue.Text(kind.value.orEmpty())
            is TomlLiteralKind.Boolean -> SpecValue.Bool(value.text == "true")
            is TomlLiteralKind.Number -> SpecValue.number(value.text)
            is TomlLiteralKind.DateTime -> SpecValue.DateTime
            null -> SpecValue.Text(value.text)
        }
        else -> SpecValue.Text(value.text)
    }

    /** Every key of [file] with its full path and value (tables as [SpecValue.Table]), in file order. */
    fun entries(file: PsiFile): List<Pair<List<String>, SpecValue>> {
        val out = mutableListOf<Pair<List<String>, SpecValue>>()
        fun add(prefix: List<String>, keyValue: TomlKeyValue) {
            val path = prefix + names(keyValue.key)
            val value = keyValue.value ?: return
            out += path to valueOf(value)
            if (value is TomlInlineTable) value.entries.forEach { add(path, it) }
        }
        for (child: PsiElement in file.children) when (child) {
            is TomlKeyValue -> add(emptyList(), child)
            is TomlTable -> names(child.header.key).let { path ->
                out += path to SpecValue.Table
                child.entries.forEach { add(path, it) }
            }
        }
        return out
    }
}
