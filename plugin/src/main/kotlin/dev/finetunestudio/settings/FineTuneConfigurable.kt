package dev.finetunestudio.settings

import com.intellij.openapi.options.BoundConfigurable
import com.intellij.openapi.project.Project
import com.intellij.openapi.ui.DialogPanel
import com.intellij.ui.dsl.builder.COLUMNS_LARGE
import com.intellij.ui.dsl.builder.bindIntText
import com.intellij.ui.dsl.builder.bindSelected
import com.intellij.ui.dsl.builder.bindText
import com.intellij.ui.dsl.builder.columns
import com.intellij.ui.dsl.builder.panel
import dev.finetunestudio.FineTuneStudioBundle.message

/** Settings | Tools | Fine-Tune Studio. Changes take effect at the next backend start (Restart backend). */
class FineTuneConfigurable(private val project: Project) : BoundConfigurable(message("settings.title")) {
    override fun createPanel(): DialogPanel {
        val options = FineTuneSettings.getInstance(project).state
        return panel {
            row(message("settings.interpreter")) {
                textField()
                    .columns(COLUMNS_LARGE)
                    .bindText({ options.interpreter.orEmpty() }, { options.interpreter = it.trim() })
                    .comment(message("settings.interpreter.comment"))
            }
            row(message("settings.stateDir")) {
                textField()
                    .columns(COLUMNS_LARGE)
                    .bindText({ options.stateDir.orEmpty() }, { options.stateDir = it.trim() })
                    .comment(message("settings.stateDir.comment"))
            }
            row(message("settings.port")) {
                intTextField(0..65535).bindIntText(options::port).comment(message("settings.port.comment"))
            }
            row {
                checkBox(message("settings.autoStart")).bindSelected(options::autoStart)
            }
        }
    }
}
