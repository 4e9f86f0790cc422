package dev.finetunestudio.platform

import com.intellij.testFramework.fixtures.BasePlatformTestCase
import com.jetbrains.jsonSchema.extension.JsonSchemaProviderFactory
import dev.finetunestudio.schema.JobSpecSchemaProvider
import dev.finetunestudio.schema.JobSpecSchemaProviderFactory

/** The schema provider is registered, matches the job config files only, and finds the shipped schema. */
class JobSpecSchemaTest : BasePlatformTestCase() {
    fun testProviderIsRegistered() {
        assertTrue(JsonSchemaProviderFactory.EP_NAME.extensionList.any { it is JobSpecSchemaProviderFactory })
    }

    fun testProviderMatchesJobConfigsOnly() {
        for (name in listOf("finetune.toml", "reviews.finetune.toml")) {
            assertTrue(name, JobSpecSchemaProvider.isAvailable(myFixture.configureByText(name, "").virtualFile))
        }
        for (name in listOf("pyproject.toml", "finetune.toml.bak", ".finetune.toml")) {
            assertFalse(name, JobSpecSchemaProvider.isAvailable(myFixture.configureByText(name, "").virtualFile))
        }
    }

    fun testShippedSchemaIsFound() {
        val schema = checkNotNull(JobSpecSchemaProvider.schemaFile)
        assertTrue(String(schema.contentsToByteArray()).contains("\"additionalProperties\": false"))
    }
}
