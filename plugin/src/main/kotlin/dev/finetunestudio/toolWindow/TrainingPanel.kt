package dev.finetunestudio.toolWindow

import com.intellij.openapi.Disposable
import com.intellij.openapi.actionSystem.ActionGroup
import com.intellij.openapi.actionSystem.ActionManager
import com.intellij.openapi.application.EDT
import com.intellij.openapi.project.Project
import com.intellij.openapi.ui.SimpleToolWindowPanel
import com.intellij.openapi.util.Disposer
import com.intellij.ui.components.JBLabel
import dev.finetunestudio.FineTuneStudioBundle.message
import dev.finetunestudio.backend.BackendService
import dev.finetunestudio.core.StudioClient
import dev.finetunestudio.settings.FineTuneSettings
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.delay
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.awt.BorderLayout
import java.awt.FlowLayout
import java.io.IOException
import javax.swing.JButton
import javax.swing.JComponent
import javax.swing.JPanel
import javax.swing.SwingConstants

/**
 * The Training tool window's content: a toolbar (New job, Open in browser, Restart backend) over the
 * dashboard in JCEF, or over the native job list where JCEF is unsupported, or over the backend's status
 * while it is not running. Follows [BackendService.state] on the EDT for as long as the window lives.
 */
class TrainingPanel(
    private val project: Project,
    private val scope: CoroutineScope,
    parent: Disposable,
    /** False in tests and where the registry disables it; then the native list is shown. */
    private val useBrowser: Boolean = true,
) : SimpleToolWindowPanel(true), Disposable {
    private val backend = BackendService.getInstance(project)
    private val holder = JPanel(BorderLayout())
    private var dashboard: DashboardBrowser? = null
    private var jobList: JobListPanel? = null
    private var refresher: Job? = null
    private val follower: Job

    /** The view currently shown: "dashboard", "jobs" or "status" (for tests). */
    var mode: String = "status"
        private set

    init {
        Disposer.register(parent, this)
        val group = ActionManager.getInstance().getAction(TOOLBAR_GROUP) as ActionGroup
        val toolbar = ActionManager.getInstance().createActionToolbar(TOOLBAR_PLACE, group, true)
        toolbar.setTargetComponent(this)
        setToolbar(toolbar.component)
        setContent(holder)
        TrainingWindow.getInstance(project).attach(this)
        follower = scope.launch(Dispatchers.EDT) { backend.state.collect(::render) }
    }

    /** Points the dashboard (or, without JCEF, nothing: the list has one view) at a fragment. */
    fun navigate(fragment: String?) {
        val client = backend.clientIfRunning()
        if (client == null) backend.start() // the dashboard opens at TrainingWindow.target once it runs
        else dashboard?.open(client, fragment)
    }

    private fun render(state: BackendService.State) {
        refresher?.cancel()
        when (state) {
            is BackendService.State.Running -> showRunning(StudioClient(state.info))
            is BackendService.State.Starting -> showStatus(message("toolwindow.starting"), button = null)
            is BackendService.State.Stopped -> {
                if (FineTuneSettings.getInstance(project).state.autoStart) backend.start()
                showStatus(message("toolwindow.stopped"), message("toolwindow.start") to backend::start)
            }
            is BackendService.State.Failed -> showStatus(message("toolwindow.failed", state.reason), message("backend.restart") to backend::restart)
        }
    }

    private fun showRunning(client: StudioClient) {
        val browser = dashboard ?: (if (useBrowser) DashboardBrowser.createOrNull(this) else null)?.also { dashboard = it }
        if (browser != null) {
            browser.open(client, TrainingWindow.getInstance(project).target)
            show(browser.component, "dashboard")
            return
        }
        val list = jobList ?: JobListPanel(backend::clientIfRunning).also { jobList = it }
        show(list, "jobs")
        refresher = scope.launch(Dispatchers.EDT) {
            while (isActive) {
                try {
                    list.update(withContext(Dispatchers.IO) { client.jobs() })
                } catch (e: IOException) {
                    // the backend's state flow reports a dead server; the list just keeps its last rows
                }
                delay(LIST_REFRESH_MS)
            }
        }
    }

    private fun showStatus(text: String, button: Pair<String, () -> Unit>?) {
        val panel = JPanel(BorderLayout())
        panel.add(JBLabel("<html>${text.replace("&", "&amp;").replace("<", "&lt;").replace("\n", "<br>")}</html>", SwingConstants.CENTER), BorderLayout.CENTER)
        if (button != null) {
            val buttons = JPanel(FlowLayout(FlowLayout.CENTER))
            buttons.add(JButton(button.first).apply { addActionListener { button.second() } })
            panel.add(buttons, BorderLayout.SOUTH)
        }
        show(panel, "status")
    }

    private fun show(component: JComponent, newMode: String) {
        mode = newMode
        if (holder.componentCount == 1 && holder.getComponent(0) === component) return
        holder.removeAll()
        holder.add(component, BorderLayout.CENTER)
        holder.revalidate()
        holder.repaint()
    }

    override fun dispose() {
        follower.cancel()
        refresher?.cancel()
        TrainingWindow.getInstance(project).detach(this)
    }

    companion object {
        const val TOOLBAR_GROUP = "FineTuneStudio.TrainingToolbar"
        private const val TOOLBAR_PLACE = "FineTuneStudio.Training"
        private const val LIST_REFRESH_MS = 3_000L
    }
}
