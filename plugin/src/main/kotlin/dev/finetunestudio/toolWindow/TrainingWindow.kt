package dev.finetunestudio.toolWindow

import com.intellij.openapi.application.EDT
import com.intellij.openapi.components.Service
import com.intellij.openapi.components.service
import com.intellij.openapi.project.Project
import com.intellij.openapi.wm.ToolWindowManager
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch

/**
 * Opens the Training tool window at a view of the dashboard: a job (`#job=<id>`), a captured tensor
 * (`#tensor=<id>`) or the new-job form (`#new`), the fragments of the dashboard's `route.js`.
 * The panel registers itself here when the tool window creates it; until then the target waits.
 */
@Service(Service.Level.PROJECT)
class TrainingWindow(private val project: Project, internal val scope: CoroutineScope) {
    @Volatile private var panel: TrainingPanel? = null

    /** The view the dashboard should show; a panel created later opens there. */
    @Volatile var target: String? = null
        private set

    fun showJob(jobId: String) = show("job=$jobId")

    fun showTensor(tensorId: String) = show("tensor=$tensorId")

    fun showNewJob() = show("new")

    /** Shows a job without taking the focus (a run that just started: the user is typing elsewhere). */
    fun reveal(jobId: String) = show("job=$jobId", focus = false)

    /** Opens the tool window (on the EDT) and points the dashboard at [fragment]. */
    fun show(fragment: String?, focus: Boolean = true) {
        target = fragment
        scope.launch(Dispatchers.EDT) {
            val window = ToolWindowManager.getInstance(project).getToolWindow(TOOL_WINDOW_ID) ?: return@launch
            val then = Runnable { panel?.navigate(fragment) }
            if (focus) window.activate(then) else window.show(then)
        }
    }

    internal fun attach(created: TrainingPanel) {
        panel = created
    }

    internal fun detach(disposed: TrainingPanel) {
        if (panel === disposed) panel = null
    }

    companion object {
        const val TOOL_WINDOW_ID = "Training"

        fun getInstance(project: Project): TrainingWindow = project.service()
    }
}
