package dev.finetunestudio.debugger

import com.intellij.openapi.actionSystem.ActionUpdateThread
import com.intellij.openapi.actionSystem.AnActionEvent
import com.intellij.openapi.diagnostic.Logger
import com.intellij.openapi.project.Project
import com.intellij.xdebugger.impl.ui.tree.actions.XDebuggerTreeActionBase
import com.intellij.xdebugger.impl.ui.tree.nodes.XValueNodeImpl
import com.jetbrains.python.debugger.PyDebugValue
import com.jetbrains.python.debugger.PyDebuggerException
import com.jetbrains.python.debugger.PyFrameAccessor
import dev.finetunestudio.FineTuneStudioBundle.message
import dev.finetunestudio.backend.BackendService
import dev.finetunestudio.backend.PythonInterpreter
import dev.finetunestudio.backend.StudioNotifications
import dev.finetunestudio.core.Capture
import dev.finetunestudio.core.InterpreterChoice
import dev.finetunestudio.toolWindow.TrainingWindow
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import java.io.IOException

/**
 * "Inspect in Fine-Tune Studio" in the debugger's Variables view (after "View as Array"; registered in
 * python.xml): evaluates `finetune_studio.debug.capture(<value>, name=...)` inside the paused process, off
 * the EDT and untruncated, then opens the Training tool window at the capture.
 */
class InspectTensorAction : XDebuggerTreeActionBase() {
    override fun getActionUpdateThread(): ActionUpdateThread = ActionUpdateThread.BGT

    /** A Python value that evaluated without error and is of an inspectable type (tensor, array, model output...). */
    override fun isEnabled(node: XValueNodeImpl, e: AnActionEvent): Boolean {
        val value = node.valueContainer as? PyDebugValue ?: return false
        return !value.isErrorOnEval && Capture.isInspectable(value.type, value.typeQualifier)
    }

    /**
     * The base class only enables or disables; hide the action everywhere else too (a Java debugger in IDEA
     * with the Python plugin, a plain int in PyCharm): the Variables menu is long enough.
     */
    override fun update(e: AnActionEvent) {
        super.update(e)
        e.presentation.isVisible = e.presentation.isEnabled
    }

    override fun perform(node: XValueNodeImpl, nodeName: String, e: AnActionEvent) {
        val project = e.project ?: return
        val value = node.valueContainer as? PyDebugValue ?: return
        val expression = Capture.expression(value.evaluationExpression, nodeName)
        val backend = BackendService.getInstance(project)
        backend.scope.launch(Dispatchers.IO) {
            try {
                backend.client() // capture() posts to the server it finds in server.json: make sure one runs
            } catch (_: IOException) {
                // capture() then returns the summary alone, with the reason
            }
            capture(project, value.frameAccessor, expression)
        }
    }

    /** Runs on a pooled thread: PyFrameAccessor.evaluate is synchronous and must not block the EDT. */
    private fun capture(project: Project, frame: PyFrameAccessor, expression: String) {
        val answer = try {
            // execute = false: an expression; doTrunc = false: the whole JSON, not pydevd's first characters
            frame.evaluate(expression, false, false)
        } catch (e: PyDebuggerException) {
            return failed(project, e.tracebackError ?: e.message ?: e.toString())
        }
        val text = answer.value.orEmpty()
        if (answer.isErrorOnEval) return failed(project, text)
        val result = try {
            Capture.parseResult(text)
        } catch (e: IllegalArgumentException) {
            return failed(project, e.message ?: text)
        }
        val id = result.id
        if (id != null) {
            TrainingWindow.getInstance(project).showTensor(id)
        } else {
            StudioNotifications.info(project, message("debugger.notStored.title"), listOfNotNull(result.summary, result.reason).joinToString("\n"))
        }
    }

    private fun failed(project: Project, error: String) {
        LOG.info("Fine-Tune Studio: capture failed: $error")
        if (Capture.isMissingPackage(error)) {
            val python = (PythonInterpreter.choose(project) as? InterpreterChoice.Found)?.path
            StudioNotifications.packageMissingInDebuggee(project, python)
        } else {
            StudioNotifications.error(project, message("debugger.failed.title"), error.lines().takeLast(6).joinToString("\n"))
        }
    }

    private companion object {
        val LOG: Logger = Logger.getInstance(InspectTensorAction::class.java)
    }
}
