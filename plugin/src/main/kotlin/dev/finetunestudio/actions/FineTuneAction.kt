package dev.finetunestudio.actions

import com.intellij.execution.ProgramRunnerUtil
import com.intellij.execution.RunManager
import com.intellij.execution.executors.DefaultRunExecutor
import com.intellij.openapi.actionSystem.ActionUpdateThread
import com.intellij.openapi.actionSystem.AnActionEvent
import com.intellij.openapi.actionSystem.CommonDataKeys
import com.intellij.openapi.project.DumbAwareAction
import com.intellij.openapi.vfs.VirtualFile
import dev.finetunestudio.core.JobConfigFiles
import dev.finetunestudio.run.FineTuneRunConfiguration

/**
 * "Fine-tune" on a `finetune.toml` / `*.finetune.toml` (editor popup, project view popup, Tools menu):
 * runs the file's run configuration, creating it on first use. Update stays cheap (a file name check) and
 * runs off the EDT.
 */
class FineTuneAction : DumbAwareAction() {
    override fun getActionUpdateThread(): ActionUpdateThread = ActionUpdateThread.BGT

    override fun update(e: AnActionEvent) {
        e.presentation.isEnabledAndVisible = e.project != null && configFile(e) != null
    }

    override fun actionPerformed(e: AnActionEvent) {
        val project = e.project ?: return
        val file = configFile(e) ?: return
        val settings = FineTuneRunConfiguration.findOrCreate(project, file.path)
        RunManager.getInstance(project).selectedConfiguration = settings
        ProgramRunnerUtil.executeConfiguration(settings, DefaultRunExecutor.getRunExecutorInstance())
    }

    private fun configFile(e: AnActionEvent): VirtualFile? =
        e.getData(CommonDataKeys.VIRTUAL_FILE)
            ?.takeIf { !it.isDirectory && it.isInLocalFileSystem && JobConfigFiles.isJobConfig(it.name) }
}
