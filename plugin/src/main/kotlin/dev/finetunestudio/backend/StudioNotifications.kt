package dev.finetunestudio.backend

import com.intellij.notification.NotificationAction
import com.intellij.notification.NotificationGroupManager
import com.intellij.notification.NotificationType
import com.intellij.openapi.components.service
import com.intellij.openapi.project.Project
import dev.finetunestudio.FineTuneStudioBundle.message
import dev.finetunestudio.core.Anomaly
import dev.finetunestudio.core.DashboardRoute
import dev.finetunestudio.core.Job
import dev.finetunestudio.core.JobState
import dev.finetunestudio.toolWindow.TrainingWindow

/** The plugin's balloons, all in one notification group (registered in plugin.xml). */
object StudioNotifications {
    private const val GROUP = "Fine-Tune Studio"

    private fun group() = NotificationGroupManager.getInstance().getNotificationGroup(GROUP)

    /** The backend could not start: Restart, and Install when the package is missing from [python]. */
    fun backendFailed(project: Project, reason: String, python: String?, missingPackage: Boolean) {
        val notification = group().createNotification(message("backend.failed.title"), html(reason), NotificationType.ERROR)
        if (missingPackage && python != null) {
            notification.addAction(NotificationAction.createSimpleExpiring(message("backend.install")) {
                project.service<BackendService>().installPackage(python)
            })
        }
        notification.addAction(NotificationAction.createSimpleExpiring(message("backend.restart")) {
            project.service<BackendService>().restart()
        })
        notification.notify(project)
    }

    /** `finetune_studio` is missing from the debuggee's interpreter (the project's, as far as we know). */
    fun packageMissingInDebuggee(project: Project, python: String?) {
        val notification = group().createNotification(
            message("debugger.missing.title"), message("debugger.missing.text"), NotificationType.WARNING,
        )
        if (python != null) {
            notification.addAction(NotificationAction.createSimpleExpiring(message("backend.install")) {
                project.service<BackendService>().installPackage(python)
            })
        }
        notification.notify(project)
    }

    fun info(project: Project, title: String, text: String) =
        group().createNotification(title, html(text), NotificationType.INFORMATION).notify(project)

    fun error(project: Project, title: String, text: String) =
        group().createNotification(title, html(text), NotificationType.ERROR).notify(project)

    /** Balloon content is HTML; server messages and paths may hold '<' or '&'. */
    private fun html(text: String): String =
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")

    /** A job completed or failed: "Show" opens the Training tool window on it. */
    fun jobFinished(project: Project, job: Job) {
        val failed = job.state != JobState.COMPLETED
        val text = if (failed) {
            message("job.failed.text", html(job.name), job.state, html(job.error?.message ?: ""))
        } else {
            message("job.completed.text", html(job.name), html(job.outputDir))
        }
        val type = if (failed) NotificationType.ERROR else NotificationType.INFORMATION
        group().createNotification(message("job.finished.title"), text, type)
            .addAction(NotificationAction.createSimpleExpiring(message("job.show")) {
                TrainingWindow.getInstance(project).showJob(job.id)
            })
            .notify(project)
    }

    /** A detector fired on [job] (issue 15): *Open batch* shows the dashboard at the job and that step. */
    fun anomaly(project: Project, job: Job, anomaly: Anomaly) {
        val text = html(anomaly.message()) + (anomaly.savedTo?.let { "<br>" + message("anomaly.saved", html(it)) } ?: "")
        group().createNotification(message("anomaly.title", html(job.name.ifEmpty { job.id }), anomaly.kind), text, NotificationType.WARNING)
            .addAction(NotificationAction.createSimpleExpiring(message("anomaly.openBatch")) {
                TrainingWindow.getInstance(project).show(DashboardRoute.batch(job.id, anomaly.step))
            })
            .notify(project)
    }
}
