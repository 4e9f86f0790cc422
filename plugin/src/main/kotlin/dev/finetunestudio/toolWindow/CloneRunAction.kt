package dev.finetunestudio.toolWindow

import com.intellij.openapi.actionSystem.ActionUpdateThread
import com.intellij.openapi.actionSystem.AnActionEvent
import com.intellij.openapi.application.EDT
import com.intellij.openapi.project.DumbAwareAction
import dev.finetunestudio.FineTuneStudioBundle.message
import dev.finetunestudio.backend.BackendService
import dev.finetunestudio.backend.StudioNotifications
import dev.finetunestudio.core.DashboardRoute
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.runInterruptible
import kotlinx.coroutines.withContext
import java.io.IOException

/**
 * "Clone Run as New Job" (the Training tool window's toolbar): pick a managed run; the tool window opens the
 * dashboard's new-job form filled with its exact spec (`#new=<id>`), which shows whether the working tree
 * still matches the run's lineage; the same verdict comes as a notification (issue 16).
 */
class CloneRunAction : DumbAwareAction() {
    override fun getActionUpdateThread(): ActionUpdateThread = ActionUpdateThread.BGT

    override fun update(e: AnActionEvent) {
        e.presentation.isEnabledAndVisible = e.project != null
    }

    override fun actionPerformed(e: AnActionEvent) {
        val project = e.project ?: return
        val backend = BackendService.getInstance(project)
        backend.scope.launch {
            try {
                val client = backend.client()
                val jobs = runInterruptible(Dispatchers.IO) { client.jobs() }.filter { it.kind == "managed" }
                val chosen = withContext(Dispatchers.EDT) {
                    ChooseRunsDialog(project, jobs, 1, message("clone.choose.title")).takeIf { it.showAndGet() }?.chosen()
                }?.single() ?: return@launch
                TrainingWindow.getInstance(project).show(DashboardRoute.cloneJob(chosen.id))
                val check = runInterruptible(Dispatchers.IO) { client.worktree(chosen.id) }
                StudioNotifications.info(project, message("clone.worktree.title"), check.summary())
            } catch (failure: IOException) { // StudioApiException too (404: a run from before lineage)
                StudioNotifications.error(project, message("clone.failed.title"), failure.message.orEmpty())
            }
        }
    }
}
