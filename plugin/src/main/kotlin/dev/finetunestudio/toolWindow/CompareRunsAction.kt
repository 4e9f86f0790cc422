package dev.finetunestudio.toolWindow

import com.intellij.diff.DiffContentFactory
import com.intellij.diff.DiffDialogHints
import com.intellij.diff.DiffManager
import com.intellij.diff.chains.SimpleDiffRequestChain
import com.intellij.diff.requests.SimpleDiffRequest
import com.intellij.openapi.actionSystem.ActionUpdateThread
import com.intellij.openapi.actionSystem.AnActionEvent
import com.intellij.openapi.application.EDT
import com.intellij.openapi.project.DumbAwareAction
import com.intellij.openapi.project.Project
import com.intellij.openapi.ui.DialogWrapper
import com.intellij.ui.components.JBScrollPane
import com.intellij.ui.table.JBTable
import dev.finetunestudio.FineTuneStudioBundle.message
import dev.finetunestudio.backend.BackendService
import dev.finetunestudio.backend.StudioNotifications
import dev.finetunestudio.core.Job
import dev.finetunestudio.core.Lineage
import dev.finetunestudio.core.RunDiff
import dev.finetunestudio.core.StudioApiException
import dev.finetunestudio.core.StudioClient
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.runInterruptible
import kotlinx.coroutines.withContext
import java.awt.Dimension
import java.io.IOException
import javax.swing.JComponent
import javax.swing.ListSelectionModel

/**
 * "Compare Two Runs" (the Training tool window's toolbar): pick two runs, then see what changed between
 * them in the IDE's diff viewer: the spec, the code (git commit and uncommitted diff) and the data and
 * versions, three requests of one chain, from `GET /api/jobs/{id}/lineage` (issue 16). A server without
 * lineage still diffs the specs it keeps on each job.
 */
class CompareRunsAction : DumbAwareAction() {
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
                val jobs = runInterruptible(Dispatchers.IO) { client.jobs() }
                val chosen = withContext(Dispatchers.EDT) {
                    ChooseRunsDialog(project, jobs, 2, message("compare.choose.title")).takeIf { it.showAndGet() }?.chosen()
                } ?: return@launch
                val (left, right) = chosen
                val lineages = runInterruptible(Dispatchers.IO) { listOf(lineageOf(client, left), lineageOf(client, right)) }
                withContext(Dispatchers.EDT) { show(project, left to lineages[0], right to lineages[1]) }
            } catch (failure: IOException) { // StudioApiException too
                StudioNotifications.error(project, message("compare.failed.title"), failure.message.orEmpty())
            }
        }
    }

    /** The run's lineage, or null from a server that has none for it (404: older server, or not recorded). */
    private fun lineageOf(client: StudioClient, job: Job): Lineage? = try {
        client.lineage(job.id)
    } catch (e: StudioApiException) {
        if (e.status == 404) null else throw e
    }

    private fun show(project: Project, left: Pair<Job, Lineage?>, right: Pair<Job, Lineage?>) {
        val contents = DiffContentFactory.getInstance()
        fun request(title: String, text: (Job, Lineage?) -> String) = SimpleDiffRequest(
            title,
            contents.create(text(left.first, left.second)),
            contents.create(text(right.first, right.second)),
            RunDiff.title(left.first),
            RunDiff.title(right.first),
        )
        val chain = SimpleDiffRequestChain(
            listOf(
                request(message("compare.spec")) { job, lineage -> RunDiff.specText(job, lineage) },
                request(message("compare.code")) { _, lineage -> RunDiff.codeText(lineage) },
                request(message("compare.environment")) { _, lineage -> RunDiff.environmentText(lineage) },
            ),
        )
        DiffManager.getInstance().showDiff(project, chain, DiffDialogHints.DEFAULT)
    }
}

/** The runs in a table; OK once exactly [count] are selected (Compare: two; Clone: one). */
internal class ChooseRunsDialog(project: Project, private val jobs: List<Job>, private val count: Int, title: String) : DialogWrapper(project) {
    private val model = JobListPanel.JobTableModel().apply { setJobs(jobs) }
    private val table = JBTable(model).apply {
        selectionModel.selectionMode = if (count == 1) ListSelectionModel.SINGLE_SELECTION else ListSelectionModel.MULTIPLE_INTERVAL_SELECTION
        selectionModel.addListSelectionListener { isOKActionEnabled = selectedRows.size == count }
    }

    init {
        this.title = title
        isOKActionEnabled = false
        init()
    }

    fun chosen(): List<Job>? = table.selectedRows.takeIf { it.size == count }?.map { model.jobAt(it) }

    override fun createCenterPanel(): JComponent = JBScrollPane(table).apply { preferredSize = Dimension(560, 300) }
}
