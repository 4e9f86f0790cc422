package dev.finetunestudio.schema

import com.intellij.openapi.project.DumbAware
import com.intellij.openapi.project.Project
import com.intellij.openapi.vfs.VirtualFile
import com.jetbrains.jsonSchema.extension.JsonSchemaFileProvider
import com.jetbrains.jsonSchema.extension.JsonSchemaProviderFactory
import com.jetbrains.jsonSchema.extension.SchemaType
import dev.finetunestudio.FineTuneStudioBundle.message
import dev.finetunestudio.core.JobConfigFiles

/**
 * The JSON Schema of JobSpec for `finetune.toml` / `*.finetune.toml` (registered in json-schema.xml, loaded
 * when the JSON plugin is present). The TOML plugin's `intellij.toml.json` module applies JSON Schemas to
 * TOML files: completion of keys and values, descriptions on hover, unknown keys and wrong types flagged.
 * The schema is generated from the Python model by `plugin/scripts/job_spec_schema.py`.
 */
class JobSpecSchemaProviderFactory : JsonSchemaProviderFactory, DumbAware {
    override fun getProviders(project: Project): List<JsonSchemaFileProvider> = listOf(JobSpecSchemaProvider)
}

object JobSpecSchemaProvider : JsonSchemaFileProvider {
    /** A resource of this plugin's jar (`plugin/src/main/resources/schemas/`). */
    const val RESOURCE = "/schemas/finetune.schema.json"

    override fun isAvailable(file: VirtualFile): Boolean = JobConfigFiles.isJobConfig(file.name)

    override fun getName(): String = message("schema.name")

    override fun getSchemaFile(): VirtualFile? = JsonSchemaProviderFactory.getResourceFile(JobSpecSchemaProvider::class.java, RESOURCE)

    /** Bundled with the plugin, bound to these files only. */
    override fun getSchemaType(): SchemaType = SchemaType.embeddedSchema
}
