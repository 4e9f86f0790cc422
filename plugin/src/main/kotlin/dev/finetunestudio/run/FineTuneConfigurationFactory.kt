package dev.finetunestudio.run

import com.intellij.execution.configurations.ConfigurationFactory
import com.intellij.execution.configurations.ConfigurationType
import com.intellij.execution.configurations.RunConfiguration
import com.intellij.openapi.components.BaseState
import com.intellij.openapi.project.Project
import dev.finetunestudio.FineTuneStudioBundle.message

class FineTuneConfigurationFactory(type: ConfigurationType) : ConfigurationFactory(type) {
    /** Must be overridden: the default falls back to the (localizable) display name and reports an error. */
    override fun getId(): String = FineTuneConfigurationType.ID

    override fun createTemplateConfiguration(project: Project): RunConfiguration =
        FineTuneRunConfiguration(project, this, message("run.type.name"))

    override fun getOptionsClass(): Class<out BaseState> = FineTuneOptions::class.java

    /** The form only edits paths and numbers: nothing needs the indexes. */
    override fun isEditableInDumbMode(): Boolean = true
}
