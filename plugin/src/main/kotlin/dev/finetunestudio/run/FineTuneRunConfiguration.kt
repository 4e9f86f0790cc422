package dev.finetunestudio.run

import com.intellij.execution.Executor
import com.intellij.execution.RunManager
import com.intellij.execution.RunnerAndConfigurationSettings
import com.intellij.execution.configurations.ConfigurationFactory
import com.intellij.execution.configurations.RunConfiguration
import com.intellij.execution.configurations.RunConfigurationBase
import com.intellij.execution.configurations.RunProfileState
import com.intellij.execution.configurations.RuntimeConfigurationError
import com.intellij.execution.configurations.runConfigurationType
import com.intellij.execution.runners.ExecutionEnvironment
import com.intellij.openapi.options.SettingsEditor
import com.intellij.openapi.project.Project
import com.intellij.openapi.util.io.FileUtil
import dev.finetunestudio.FineTuneStudioBundle.message
import dev.finetunestudio.core.JobConfigFiles
import dev.finetunestudio.core.SpecOverrides
import java.nio.file.Files
import java.nio.file.Path

/** Run = submit the config file's job to the backend and follow it in the console; Stop = cancel the job. */
class FineTuneRunConfiguration(project: Project, factory: ConfigurationFactory, name: String) :
    RunConfigurationBase<FineTuneOptions>(project, factory, name) {

    public override fun getOptions(): FineTuneOptions = super.getOptions() as FineTuneOptions

    /**
     * Stored in the platform's system-independent form ('/' separators, as `VirtualFile.path`), so that the
     * producer, the action and workspace.xml agree on Windows too; shown system-dependent in the form.
     */
    var configPath: String
        get() = options.configPath.orEmpty()
        set(value) {
            options.configPath = FileUtil.toSystemIndependentName(value)
        }

    var overrides: SpecOverrides
        get() = SpecOverrides(options.epochs, options.batchSize, options.learningRate, options.maxSteps)
        set(value) {
            options.epochs = value.epochs
            options.batchSize = value.batchSize
            options.learningRate = value.learningRate
            options.maxSteps = value.maxSteps
        }

    override fun getConfigurationEditor(): SettingsEditor<out RunConfiguration> = FineTuneSettingsEditor(project)

    override fun checkConfiguration() {
        if (configPath.isBlank()) throw RuntimeConfigurationError(message("run.error.noConfig"))
        if (!Files.isRegularFile(Path.of(configPath))) throw RuntimeConfigurationError(message("run.error.missingConfig", configPath))
        overrides.problems().firstOrNull()?.let { throw RuntimeConfigurationError(it) }
    }

    override fun getState(executor: Executor, environment: ExecutionEnvironment): RunProfileState =
        FineTuneRunState(environment, this)

    companion object {
        /** The run configuration of [configFile] (a `VirtualFile.path`), created (and saved) when there is none yet. */
        fun findOrCreate(project: Project, configFile: String): RunnerAndConfigurationSettings {
            val runManager = RunManager.getInstance(project)
            val type = runConfigurationType<FineTuneConfigurationType>()
            val path = FileUtil.toSystemIndependentName(configFile)
            runManager.getConfigurationSettingsList(type)
                .firstOrNull { (it.configuration as? FineTuneRunConfiguration)?.configPath == path }
                ?.let { return it }
            val file = Path.of(path)
            val name = JobConfigFiles.runName(file.fileName.toString(), file.parent?.fileName?.toString())
            val settings = runManager.createConfiguration(runManager.suggestUniqueName(name, type), type.configurationFactories.first())
            (settings.configuration as FineTuneRunConfiguration).configPath = path
            runManager.addConfiguration(settings)
            return settings
        }
    }
}
