package dev.finetunestudio.run

import com.google.gson.JsonObject
import com.google.gson.JsonParseException
import com.intellij.execution.KillableProcess
import com.intellij.execution.process.ProcessEvent
import com.intellij.execution.process.ProcessHandler
import com.intellij.execution.process.ProcessListener
import com.intellij.execution.process.ProcessOutputType
import com.intellij.openapi.project.Project
import com.intellij.openapi.util.Key
import dev.finetunestudio.FineTuneStudioBundle.message
import dev.finetunestudio.backend.BackendService
import dev.finetunestudio.backend.PythonInterpreter
import dev.finetunestudio.backend.blockingUntilCancelled
import dev.finetunestudio.core.BackendCommand
import dev.finetunestudio.core.BackendProcess
import dev.finetunestudio.core.ConsoleLine
import dev.finetunestudio.core.InterpreterChoice
import dev.finetunestudio.core.JobRun
import dev.finetunestudio.core.SpecOverrides
import dev.finetunestudio.core.StudioJson
import dev.finetunestudio.toolWindow.TrainingWindow
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.launch
import kotlinx.coroutines.runInterruptible
import kotlinx.coroutines.withContext
import java.io.OutputStream
import java.nio.file.Path
import java.time.Duration

/**
 * A job in the clothes of a process, so that the Run tool window works as for any program: once the
 * console is attached it loads the config (with the backend's own TOML loader), applies the form's
 * overrides, submits the job and prints its stream; it terminates with the job's exit code. The rules
 * (always end, Stop cancels, Stop during the submit cancels once the id is known, a second Stop ends the
 * run at once) live in [JobRun], which the core tests check against a real HTTP server.
 */
class JobProcessHandler(
    private val project: Project,
    private val configFile: Path,
    private val overrides: SpecOverrides,
) : ProcessHandler(), KillableProcess {
    private val backend = BackendService.getInstance(project)
    private val run = JobRun(
        console = ::emit,
        onEnd = ::notifyProcessTerminated,
        background = { task -> backend.scope.launch(Dispatchers.IO) { task.run() } },
    )
    @Volatile private var work: Job? = null

    init {
        // text sent before the console listens would be lost, so the work starts at startNotify
        addProcessListener(object : ProcessListener {
            override fun startNotified(event: ProcessEvent) {
                work = backend.scope.launch { runJob() }
            }
        })
    }

    private suspend fun runJob() {
        try {
            emit(ConsoleLine(message("run.console.backend"), isSystem = true))
            val studio = backend.client()
            val spec = loadSpec() ?: return run.end(2)
            overrides.applyTo(spec)
            blockingUntilCancelled(run) {
                run.execute(studio, spec) { job -> TrainingWindow.getInstance(project).reveal(job.id) }
            }
        } catch (e: CancellationException) {
            throw e
        } catch (e: Exception) {
            // the backend did not start, the interpreter is gone, an override is invalid...: the run must still end
            run.fail(e)
        }
    }

    /** The config as JobSpec JSON, or null (after printing why) when it does not load. */
    private suspend fun loadSpec(): JsonObject? {
        val python = when (val choice = withContext(Dispatchers.IO) { PythonInterpreter.choose(project) }) {
            is InterpreterChoice.Found -> choice.path
            is InterpreterChoice.Missing -> {
                emit(ConsoleLine(choice.reason, isError = true))
                return null
            }
        }
        val result = runInterruptible(Dispatchers.IO) { BackendProcess.run(BackendCommand.loadSpec(python, configFile), Duration.ofSeconds(60)) }
        if (!result.ok) {
            emit(ConsoleLine(message("run.console.badConfig", configFile.toString()), isError = true))
            emit(ConsoleLine(result.stderr, isError = true))
            return null
        }
        val json = result.stdout.lines().lastOrNull { it.isNotBlank() }.orEmpty()
        return try {
            StudioJson.parseObject(json)
        } catch (e: JsonParseException) {
            emit(ConsoleLine(message("run.console.badConfig", configFile.toString()) + " " + json.take(300), isError = true))
            null
        }
    }

    private fun emit(line: ConsoleLine) {
        val type: Key<*> = when {
            line.isError -> ProcessOutputType.STDERR
            line.isSystem -> ProcessOutputType.SYSTEM
            else -> ProcessOutputType.STDOUT
        }
        notifyTextAvailable(line.text + "\n", type)
    }

    /** Stop: cancel the job and keep following until it reports `cancelled` (its checkpoint saved). */
    override fun destroyProcessImpl() {
        run.stop()
        if (run.isEnded) work?.cancel() // stopped before the submit: the config loader need not finish
    }

    /** The second Stop ("Kill process" once the first asked the job to cancel): stop following now. */
    override fun canKillProcess(): Boolean = run.canKill

    override fun killProcess() = run.kill()

    /** Detach: stop watching, leave the job running (the Training tool window still shows it). */
    override fun detachProcessImpl() {
        run.close()
        work?.cancel()
        notifyProcessDetached()
    }

    override fun detachIsDefault(): Boolean = false

    override fun getProcessInput(): OutputStream? = null
}
