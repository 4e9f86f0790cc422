package dev.finetunestudio.toolWindow

import com.intellij.ide.BrowserUtil
import com.intellij.ui.components.JBScrollPane
import com.intellij.ui.table.JBTable
import dev.finetunestudio.FineTuneStudioBundle.message
import dev.finetunestudio.core.Job
import dev.finetunestudio.core.StudioClient
import java.awt.BorderLayout
import java.awt.event.MouseAdapter
import java.awt.event.MouseEvent
import javax.swing.JButton
import javax.swing.JPanel
import javax.swing.table.AbstractTableModel

/**
 * The Training tool window where JCEF is unsupported: the jobs with their state and progress, and a way to
 * the full dashboard in the browser (a double-click opens that job there). [update] is called on the EDT
 * with each fresh list.
 */
class JobListPanel(private val client: () -> StudioClient?) : JPanel(BorderLayout()) {
    val model = JobTableModel()
    private val table = JBTable(model)

    init {
        table.addMouseListener(object : MouseAdapter() {
            override fun mouseClicked(e: MouseEvent) {
                if (e.clickCount != 2) return
                val row = table.selectedRow.takeIf { it >= 0 } ?: return
                openInBrowser("job=${model.jobAt(row).id}")
            }
        })
        add(JBScrollPane(table), BorderLayout.CENTER)
        add(JButton(message("toolwindow.openInBrowser")).apply { addActionListener { openInBrowser(null) } }, BorderLayout.SOUTH)
    }

    fun update(jobs: List<Job>) = model.setJobs(jobs)

    private fun openInBrowser(fragment: String?) {
        client()?.let { BrowserUtil.browse(it.dashboardUrl(fragment, DashboardBrowser.theme())) }
    }

    class JobTableModel : AbstractTableModel() {
        private var jobs: List<Job> = emptyList()
        private val columns = listOf(
            message("joblist.name"), message("joblist.task"), message("joblist.state"),
            message("joblist.progress"), message("joblist.device"),
        )

        fun setJobs(newJobs: List<Job>) {
            jobs = newJobs
            fireTableDataChanged()
        }

        fun jobAt(row: Int): Job = jobs[row]

        override fun getRowCount(): Int = jobs.size
        override fun getColumnCount(): Int = columns.size
        override fun getColumnName(column: Int): String = columns[column]

        override fun getValueAt(row: Int, column: Int): Any {
            val job = jobs[row]
            return when (column) {
                0 -> job.name
                1 -> job.task
                2 -> job.state
                3 -> job.progress.fraction?.let { "%d%%  (%d/%d)".format((it * 100).toInt(), job.progress.step, job.progress.maxSteps) } ?: "—"
                else -> job.device ?: ""
            }
        }
    }
}
