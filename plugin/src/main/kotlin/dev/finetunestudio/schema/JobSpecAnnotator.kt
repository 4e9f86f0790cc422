package dev.finetunestudio.schema

import com.intellij.lang.annotation.AnnotationHolder
import com.intellij.lang.annotation.Annotator
import com.intellij.lang.annotation.HighlightSeverity
import com.intellij.psi.PsiElement
import com.intellij.psi.PsiFile
import dev.finetunestudio.core.JobConfigFiles
import dev.finetunestudio.core.SpecPaths
import dev.finetunestudio.core.SpecSchema
import dev.finetunestudio.core.SpecValue
import org.toml.lang.psi.TomlKeyValue
import org.toml.lang.psi.TomlTable
import java.nio.file.Path

/**
 * Highlights in `finetune.toml` / `*.finetune.toml` what the server would refuse, in its words: unknown
 * keys with "did you mean", wrong values, missing required keys (errors), and data files or model
 * folders that do not exist (warnings: they may appear before the run). The checks are the core's
 * [SpecSchema] and [SpecPaths]; this class only maps PSI to key paths. Each annotation lies inside the
 * element being annotated, as the platform requires.
 */
class JobSpecAnnotator : Annotator {
    override fun annotate(element: PsiElement, holder: AnnotationHolder) {
        val file = element.containingFile ?: return
        if (!JobConfigFiles.isJobConfig(file.name)) return
        when (element) {
            is TomlKeyValue -> keyValue(element, file, holder)
            is TomlTable -> table(element, holder)
            is PsiFile -> root(element, holder)
        }
    }

    private fun keyValue(element: TomlKeyValue, file: PsiFile, holder: AnnotationHolder) {
        val prefix = TomlSpecEntries.prefixOf(element) ?: return
        val own = TomlSpecEntries.names(element.key)
        val path = prefix + own
        when (val found = SCHEMA.lookup(path)) {
            is SpecSchema.Lookup.Unknown -> {
                // an unknown table above this key is flagged once, on its header
                val segment = element.key.segments.getOrNull(found.index - prefix.size) ?: return
                holder.newAnnotation(HighlightSeverity.ERROR, found.message).range(segment).create()
            }
            is SpecSchema.Lookup.Known -> {
                val value = element.value ?: return
                val parsed = TomlSpecEntries.valueOf(value)
                val problem = SCHEMA.valueProblem(path, parsed)
                if (problem != null) {
                    holder.newAnnotation(HighlightSeverity.ERROR, problem).range(value).create()
                    return
                }
                val dotted = path.joinToString(".")
                val folder = file.virtualFile?.takeIf { it.isInLocalFileSystem }?.parent?.path ?: return
                if (dotted in SpecPaths.FIELDS && parsed is SpecValue.Text) {
                    SpecPaths.problem(dotted, parsed.value, Path.of(folder))?.let {
                        holder.newAnnotation(HighlightSeverity.WARNING, it).range(value).create()
                    }
                }
            }
            SpecSchema.Lookup.Free -> Unit
        }
    }

    private fun table(element: TomlTable, holder: AnnotationHolder) {
        val header = element.header
        val path = TomlSpecEntries.names(header.key)
        when (val found = SCHEMA.lookup(path)) {
            is SpecSchema.Lookup.Unknown -> {
                val segment = header.key?.segments?.getOrNull(found.index) ?: header
                holder.newAnnotation(HighlightSeverity.ERROR, found.message).range(segment).create()
            }
            is SpecSchema.Lookup.Known -> {
                val keys = element.entries.mapNotNull { TomlSpecEntries.names(it.key).firstOrNull() }.toSet()
                for (problem in SCHEMA.tableProblems(path, keys)) {
                    holder.newAnnotation(HighlightSeverity.ERROR, "${problem.field}: ${problem.message}").range(header).create()
                }
            }
            SpecSchema.Lookup.Free -> Unit
        }
    }

    /** Required top-level keys (`model`, `[data]`), flagged on the file's first key or table. */
    private fun root(file: PsiFile, holder: AnnotationHolder) {
        val first = file.children.firstOrNull { it is TomlKeyValue || it is TomlTable } ?: return
        val keys = file.children.mapNotNull {
            when (it) {
                is TomlKeyValue -> TomlSpecEntries.names(it.key).firstOrNull()
                is TomlTable -> TomlSpecEntries.names(it.header.key).firstOrNull()
                else -> null
            }
        }.toSet()
        for (problem in SCHEMA.tableProblems(emptyList(), keys)) {
            holder.newAnnotation(HighlightSeverity.ERROR, "${problem.field}: ${problem.message}").range(first.textRange).create()
        }
    }

    companion object {
        /** The schema shipped in the plugin (the JSON Schema provider serves the same file). */
        val SCHEMA: SpecSchema by lazy {
            val stream = JobSpecAnnotator::class.java.getResourceAsStream(SpecSchema.RESOURCE)
                ?: error("${SpecSchema.RESOURCE} is missing from the plugin")
            SpecSchema.parse(stream.use { String(it.readAllBytes(), Charsets.UTF_8) })
        }
    }
}
