package dev.finetunestudio.platform

import com.intellij.execution.actions.ConfigurationContext
import com.intellij.execution.configurations.runConfigurationType
import com.intellij.testFramework.fixtures.BasePlatformTestCase
import dev.finetunestudio.core.SpecOverrides
import dev.finetunestudio.run.FineTuneConfigurationProducer
import dev.finetunestudio.run.FineTuneConfigurationType
import dev.finetunestudio.run.FineTuneRunConfiguration
import org.jdom.Element

/** Needs the IntelliJ test framework: runs under `gradle test` only (test-core.sh compiles core tests only). */
class RunConfigurationTest : BasePlatformTestCase() {
    private fun newConfiguration(): FineTuneRunConfiguration {
        val factory = runConfigurationType<FineTuneConfigurationType>().configurationFactories.first()
        return factory.createTemplateConfiguration(project) as FineTuneRunConfiguration
    }

    fun testOptionsSurviveWriteAndRead() {
        val original = newConfiguration()
        original.configPath = "/work/reviews/finetune.toml"
        original.overrides = SpecOverrides(epochs = "2", batchSize = "8", learningRate = "3e-5", maxSteps = null)
        val element = Element("configuration")
        original.writeExternal(element)

        val restored = newConfiguration()
        restored.readExternal(element)
        assertEquals("/work/reviews/finetune.toml", restored.configPath)
        assertEquals(SpecOverrides(epochs = "2", batchSize = "8", learningRate = "3e-5", maxSteps = null), restored.overrides)
    }

    fun testFactoryHasAStableId() {
        val factory = runConfigurationType<FineTuneConfigurationType>().configurationFactories.single()
        assertEquals(FineTuneConfigurationType.ID, factory.id)
    }

    fun testProducerMakesAConfigurationFromAJobConfig() {
        val file = myFixture.configureByText("finetune.toml", "model = \"models/minilm\"\n")
        val fromContext = FineTuneConfigurationProducer().createConfigurationFromContext(ConfigurationContext(file))
        assertNotNull(fromContext)
        val configuration = checkNotNull(fromContext).configuration as FineTuneRunConfiguration
        assertEquals(file.virtualFile.path, configuration.configPath)
        assertTrue(FineTuneConfigurationProducer().isConfigurationFromContext(configuration, ConfigurationContext(file)))
    }

    fun testProducerIgnoresOtherFiles() {
        val file = myFixture.configureByText("pyproject.toml", "[project]\nname = \"x\"\n")
        assertNull(FineTuneConfigurationProducer().createConfigurationFromContext(ConfigurationContext(file)))
    }
}
