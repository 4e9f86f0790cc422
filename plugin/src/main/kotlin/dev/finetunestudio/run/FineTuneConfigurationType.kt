package dev.finetunestudio.run

import com.intellij.execution.configurations.ConfigurationTypeBase
import com.intellij.icons.AllIcons
import com.intellij.openapi.util.NotNullLazyValue
import dev.finetunestudio.FineTuneStudioBundle.message

/** The "Fine-tune" run configuration type (registered in plugin.xml). */
class FineTuneConfigurationType : ConfigurationTypeBase(
    ID,
    message("run.type.name"),
    message("run.type.description"),
    NotNullLazyValue.createValue { AllIcons.Actions.Execute },
) {
    init {
        addFactory(FineTuneConfigurationFactory(this))
    }

    companion object {
        /** Stored in workspace.xml: never change it, or users lose their run configurations. */
        const val ID = "FineTuneStudio"
    }
}
