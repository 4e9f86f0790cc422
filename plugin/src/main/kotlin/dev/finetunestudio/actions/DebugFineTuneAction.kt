package dev.finetunestudio.actions

import com.intellij.execution.ProgramRunnerUtil
import com.intellij.execution.RunManager
import com.intellij.execution.RunnerAndConfigurationSettings
import com.intellij.execution.executors.DefaultDebugExecutor
import com.intellij.openapi.actionSystem.ActionUpdateThread
import com.intellij.openapi.actionSystem.AnActionEvent
import com.intellij.openapi.actionSystem.CommonDataKeys
import com.intellij.openapi.application.EDT
import com.intellij.openapi.project.DumbAwareAction
import com.intellij.openapi.project.Project
import com.intellij.openapi.vfs.VirtualFile
import com.jetbrains.python.run.PythonConfigurationType
import com.jetbrains.python.run.PythonRunConfiguration
import dev.finetunestudio.FineTuneStudioBundle.message
import dev.finetunestudio.backend.BackendService
import dev.finetunestudio.backend.PythonInterpreter
import dev.finetunestudio.backend.StudioNotifications
import dev.finetunestudio.core.BackendCommand
import dev.finetunestudio.core.InterpreterChoice
import dev.finetunestudio.core.JobConfigFiles
import dev.finetunestudio.core.ServerDiscovery
import dev.finetunestudio.core.TrainCommand
import dev.finetunestudio.settings.FineTuneSettings
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.io.IOException
import java.nio.file.Path

/**
 * "Debug Fine-tune" on a `finetune.toml`: runs the job's training in this one process under PyCharm's own
 * Python debugger, as a standard Python run configuration (`python -m finetune_studio train <toml>`, module
 * mode, the backend's interpreter, `FINETUNE_STUDIO_HOME` = the state folder), created or updated as
 * "Debug <name>" so that the Debug button and the run list offer it again. The process reports to the
 * backend as an attached run and stops in the debugger on an anomaly (issue 15). Registered in python.xml.
 */
class DebugFineTuneAction : DumbAwareAction() {
    override fun getActionUpdateThread(): ActionUpdateThread = ActionUpdateThread.BGT

    override fun update(e: AnActionEvent) {
        e.presentation.isEnabledAndVisible = e.project != null && configFile(e) != null
    }

    override fun actionPerformed(e: AnActionEvent) {
        val project = e.project ?: return
        val file = configFile(e) ?: return
        val backend = BackendService.getInstance(project)
        backend.scope.launch {
            val command = try {
                backend.client() // the attached run reports to this server
                trainCommand(project, file)
            } catch (failure: IOException) {
                StudioNotifications.error(project, message("debug.failed.title"), failure.message.orEmpty())
                return@launch
            }
            withContext(Dispatchers.EDT) {
                ProgramRunnerUtil.executeConfiguration(configuration(project, file, command), DefaultDebugExecutor.getDebugExecutorInstance())
            }
        }
    }

    private fun trainCommand(project: Project, file: VirtualFile): TrainCommand {
        val python = when (val choice = PythonInterpreter.choose(project)) {
            is InterpreterChoice.Found -> choice.path
            is InterpreterChoice.Missing -> throw IOException(choice.reason)
        }
        val settings = FineTuneSettings.getInstance(project).state
        val stateDir = ServerDiscovery().stateDir(project.basePath?.let { Path.of(it) }, settings.stateDir)
            ?: throw IOException(message("backend.noStateDir"))
        return BackendCommand.train(python, Path.of(file.path), stateDir)
    }

    /** The file's "Debug <name>" Python configuration, set to [command] (a changed interpreter or folder is picked up). */
    private fun configuration(project: Project, file: VirtualFile, command: TrainCommand): RunnerAndConfigurationSettings {
        val runManager = RunManager.getInstance(project)
        val type = PythonConfigurationType.getInstance()
        val name = message("debug.configuration.name", JobConfigFiles.runName(file.name, file.parent?.name))
        val settings = runManager.getConfigurationSettingsList(type).firstOrNull { it.name == name }
            ?: runManager.createConfiguration(name, type.factory).also { runManager.addConfiguration(it) }
        (settings.configuration as PythonRunConfiguration).apply {
            isModuleMode = true
            scriptName = command.module
            scriptParameters = command.parameters
            workingDirectory = command.workingDirectory.toString()
            sdkHome = command.python
            isUseModuleSdk = false
            envs = LinkedHashMap(envs).apply { putAll(command.environment) }
        }
        runManager.selectedConfiguration = settings
        return settings
    }

    private fun configFile(e: AnActionEvent): VirtualFile? =
        e.getData(CommonDataKeys.VIRTUAL_FILE)
            ?.takeIf { !it.isDirectory && it.isInLocalFileSystem && JobConfigFiles.isJobConfig(it.name) }
}
