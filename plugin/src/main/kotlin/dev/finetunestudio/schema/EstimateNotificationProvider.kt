package dev.finetunestudio.schema

import com.intellij.openapi.fileEditor.FileEditor
import com.intellij.openapi.project.DumbAware
import com.intellij.openapi.project.Project
import com.intellij.openapi.vfs.VirtualFile
import com.intellij.ui.EditorNotificationPanel
import com.intellij.ui.EditorNotificationProvider
import dev.finetunestudio.FineTuneStudioBundle.message
import dev.finetunestudio.core.EstimateSummary
import dev.finetunestudio.core.JobConfigFiles
import java.util.function.Function
import javax.swing.JComponent

/**
 * The banner at the top of an open `finetune.toml`: will the job fit, how much memory, how long an epoch,
 * and the setting that would make it fit. Reads [SpecEstimates]' cached answer only (this runs under a
 * read lock, never waits for the network).
 */
class EstimateNotificationProvider : EditorNotificationProvider, DumbAware {
    override fun collectNotificationData(project: Project, file: VirtualFile): Function<in FileEditor, out JComponent?>? {
        if (!JobConfigFiles.isJobConfig(file.name) || !file.isInLocalFileSystem) return null
        val summary = SpecEstimates.getInstance(project).current(file)?.let(EstimateSummary::of) ?: return null
        return Function<FileEditor, JComponent?> { editor ->
            val status = if (summary.fits) EditorNotificationPanel.Status.Info else EditorNotificationPanel.Status.Warning
            EditorNotificationPanel(editor, status).text(text(summary))
        }
    }

    private fun text(summary: EstimateSummary): String {
        val parts = mutableListOf(if (summary.fits) message("estimate.fits") else message("estimate.noFit"))
        summary.memory?.let { parts += message("estimate.memory", it) }
        summary.timePerEpoch?.let { parts += message("estimate.epoch", it) }
        summary.warning?.let { parts += it }
        summary.suggestion?.let { parts += message("estimate.suggestion", it) }
        return parts.joinToString(" \u00b7 ")
    }
}
