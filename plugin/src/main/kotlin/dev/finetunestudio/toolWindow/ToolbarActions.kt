package dev.finetunestudio.toolWindow

import com.intellij.ide.BrowserUtil
import com.intellij.openapi.actionSystem.ActionUpdateThread
import com.intellij.openapi.actionSystem.AnActionEvent
import com.intellij.openapi.project.DumbAwareAction
import dev.finetunestudio.backend.BackendService
import kotlinx.coroutines.launch
import java.io.IOException

// The Training tool window's toolbar (group FineTuneStudio.TrainingToolbar in plugin.xml, texts in the
// bundle). Each is also reachable through Find Action.

/** Opens the dashboard's new-job form. */
class NewJobAction : DumbAwareAction() {
    override fun getActionUpdateThread(): ActionUpdateThread = ActionUpdateThread.BGT

    override fun update(e: AnActionEvent) {
        e.presentation.isEnabledAndVisible = e.project != null
    }

    override fun actionPerformed(e: AnActionEvent) {
        TrainingWindow.getInstance(e.project ?: return).showNewJob()
    }
}

/** The dashboard, at the tool window's current view, in the system browser (starting the backend if needed). */
class OpenInBrowserAction : DumbAwareAction() {
    override fun getActionUpdateThread(): ActionUpdateThread = ActionUpdateThread.BGT

    override fun update(e: AnActionEvent) {
        e.presentation.isEnabledAndVisible = e.project != null
    }

    override fun actionPerformed(e: AnActionEvent) {
        val project = e.project ?: return
        val window = TrainingWindow.getInstance(project)
        window.scope.launch {
            try {
                val client = BackendService.getInstance(project).client()
                BrowserUtil.browse(client.dashboardUrl(window.target, DashboardBrowser.theme()))
            } catch (_: IOException) {
                // the backend's failure is already notified
            }
        }
    }
}

class RestartBackendAction : DumbAwareAction() {
    override fun getActionUpdateThread(): ActionUpdateThread = ActionUpdateThread.BGT

    override fun update(e: AnActionEvent) {
        e.presentation.isEnabledAndVisible = e.project != null
    }

    override fun actionPerformed(e: AnActionEvent) {
        BackendService.getInstance(e.project ?: return).restart()
    }
}
