package dev.finetunestudio.run

import com.intellij.execution.actions.ConfigurationContext
import com.intellij.execution.actions.LazyRunConfigurationProducer
import com.intellij.execution.configurations.ConfigurationFactory
import com.intellij.execution.configurations.runConfigurationType
import com.intellij.openapi.util.Ref
import com.intellij.openapi.vfs.VirtualFile
import com.intellij.psi.PsiElement
import dev.finetunestudio.core.JobConfigFiles

/** "Run 'Fine-tune'" from a `finetune.toml` / `*.finetune.toml` in the editor or the project view. */
class FineTuneConfigurationProducer : LazyRunConfigurationProducer<FineTuneRunConfiguration>() {
    override fun getConfigurationFactory(): ConfigurationFactory =
        runConfigurationType<FineTuneConfigurationType>().configurationFactories.first()

    override fun setupConfigurationFromContext(
        configuration: FineTuneRunConfiguration,
        context: ConfigurationContext,
        sourceElement: Ref<PsiElement>,
    ): Boolean {
        val file = configFileOf(context) ?: return false
        configuration.configPath = file.path
        configuration.name = JobConfigFiles.runName(file.name, file.parent?.name)
        return true
    }

    override fun isConfigurationFromContext(configuration: FineTuneRunConfiguration, context: ConfigurationContext): Boolean =
        configFileOf(context)?.path == configuration.configPath

    private fun configFileOf(context: ConfigurationContext): VirtualFile? =
        context.psiLocation?.containingFile?.virtualFile?.takeIf { JobConfigFiles.isJobConfig(it.name) }
}
