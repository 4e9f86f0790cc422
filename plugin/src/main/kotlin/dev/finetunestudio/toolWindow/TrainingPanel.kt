package dev.finetunestudio.toolWindow

import com.google.gson.JsonParseException
import com.intellij.openapi.Disposable
import com.intellij.openapi.actionSystem.ActionGroup
import com.intellij.openapi.actionSystem.ActionManager
import com.intellij.openapi.application.EDT
import com.intellij.openapi.diagnostic.Logger
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

    /** JCEF failed to load the dashboard once: the native list from then on. */
    @Volatile private var browserFailed = false

    /** The view currently shown: "dashboard", "jobs", or the backend's "stopped", "starting", "failed" (for tests). */
    var mode: String = "none"
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
            is BackendService.State.Starting -> showStatus("starting", message("toolwindow.starting"), button = null)
            is BackendService.State.Stopped -> {
                if (FineTuneSettings.getInstance(project).state.autoStart) backend.start()
                showStatus("stopped", message("toolwindow.stopped"), message("toolwindow.start") to backend::start)
            }
            is BackendService.State.Failed ->
                showStatus("failed", message("toolwindow.failed", state.reason), message("backend.restart") to backend::restart)
        }
    }

    private fun showRunning(client: StudioClient) {
        val browser = if (!useBrowser || browserFailed) null
        else dashboard ?: DashboardBrowser.createOrNull(this) { onBrowserError() }?.also { dashboard = it }
        if (browser != null) {
            browser.open(client, TrainingWindow.getInstance(project).target)
            show(browser.component, "dashboard")
            return
        }
        val list = jobList ?: JobListPanel(backend::clientIfRunning).also { jobList = it }
        show(list, "jobs")
        refresher = scope.launch(Dispatchers.EDT) {
            while (isActive) {
                // no request while the tool window is hidden (or collapsed): the list refreshes when shown again
                if (list.isShowing) {
                    try {
                        list.update(withContext(Dispatchers.IO) { client.jobs() })
                    } catch (e: IOException) {
                        // the backend's state flow reports a dead server; the list just keeps its last rows
                    } catch (e: JsonParseException) {
                        LOG.warn("Fine-Tune Studio: the job list does not parse", e)
                    }
                }
                delay(LIST_REFRESH_MS)
            }
        }
    }

    /** The dashboard did not load in JCEF (called on a CEF thread): show the native list instead. */
    private fun onBrowserError() {
        browserFailed = true
        scope.launch(Dispatchers.EDT) {
            val state = backend.state.value
            if (state is BackendService.State.Running && mode == "dashboard") render(state)
        }
    }

    private fun showStatus(newMode: String, text: String, button: Pair<String, () -> Unit>?) {
        val panel = JPanel(BorderLayout())
        panel.add(JBLabel("<html>${text.replace("&", "&amp;").replace("<", "&lt;").replace("\n", "<br>")}</html>", SwingConstants.CENTER), BorderLayout.CENTER)
        if (button != null) {
            val buttons = JPanel(FlowLayout(FlowLayout.CENTER))
            buttons.add(JButton(button.first).apply { addActionListener { button.second() } })
            panel.add(buttons, BorderLayout.SOUTH)
        }
        show(panel, newMode)
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
        private val LOG = Logger.getInstance(TrainingPanel::class.java)
        const val TOOLBAR_GROUP = "FineTuneStudio.TrainingToolbar"
        private const val TOOLBAR_PLACE = "FineTuneStudio.Training"
        private const val LIST_REFRESH_MS = 3_000L
    }
}
