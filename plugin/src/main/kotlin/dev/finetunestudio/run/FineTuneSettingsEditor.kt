package dev.finetunestudio.run

import com.intellij.openapi.fileChooser.FileChooserDescriptorFactory
import com.intellij.openapi.options.SettingsEditor
import com.intellij.openapi.project.Project
import com.intellij.openapi.ui.TextFieldWithBrowseButton
import com.intellij.openapi.util.io.FileUtil
import com.intellij.ui.components.JBTextField
import com.intellij.util.ui.FormBuilder
import dev.finetunestudio.FineTuneStudioBundle.message
import dev.finetunestudio.core.SpecOverrides
import javax.swing.JComponent

/** The form: the config file (with browse) and the hyper-parameters it may override. */
class FineTuneSettingsEditor(project: Project) : SettingsEditor<FineTuneRunConfiguration>() {
    private val configFile = TextFieldWithBrowseButton().apply {
        addBrowseFolderListener(project, FileChooserDescriptorFactory.createSingleFileNoJarsDescriptor().withTitle(message("run.form.chooseConfig")))
    }
    private val epochs = JBTextField()
    private val batchSize = JBTextField()
    private val learningRate = JBTextField()
    private val maxSteps = JBTextField()

    override fun resetEditorFrom(configuration: FineTuneRunConfiguration) {
        configFile.text = FileUtil.toSystemDependentName(configuration.configPath)
        val overrides = configuration.overrides
        epochs.text = overrides.epochs.orEmpty()
        batchSize.text = overrides.batchSize.orEmpty()
        learningRate.text = overrides.learningRate.orEmpty()
        maxSteps.text = overrides.maxSteps.orEmpty()
    }

    override fun applyEditorTo(configuration: FineTuneRunConfiguration) {
        configuration.configPath = configFile.text.trim()
        configuration.overrides = SpecOverrides(epochs.text, batchSize.text, learningRate.text, maxSteps.text)
    }

    override fun createEditor(): JComponent {
        for (field in listOf(epochs, batchSize, learningRate, maxSteps)) field.emptyText.setText(message("run.form.fromFile"))
        return FormBuilder.createFormBuilder()
            .addLabeledComponent(message("run.form.config"), configFile)
            .addSeparator()
            .addLabeledComponent(message("run.form.epochs"), epochs)
            .addLabeledComponent(message("run.form.batchSize"), batchSize)
            .addLabeledComponent(message("run.form.learningRate"), learningRate)
            .addLabeledComponent(message("run.form.maxSteps"), maxSteps)
            .panel
    }
}
