package dev.finetunestudio.run

import com.google.gson.JsonObject
import com.google.gson.JsonParseException
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
import dev.finetunestudio.core.ConsoleLines
import dev.finetunestudio.core.InterpreterChoice
import dev.finetunestudio.core.JobFollower
import dev.finetunestudio.core.JobState
import dev.finetunestudio.core.SpecOverrides
import dev.finetunestudio.core.StudioApiException
import dev.finetunestudio.core.StudioClient
import dev.finetunestudio.core.StudioJson
import dev.finetunestudio.toolWindow.TrainingWindow
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.launch
import kotlinx.coroutines.runInterruptible
import kotlinx.coroutines.withContext
import java.io.IOException
import java.io.OutputStream
import java.nio.file.Path
import java.time.Duration

/**
 * A job in the clothes of a process, so that the Run tool window works as for any program: once the
 * console is attached it loads the config (with the backend's own TOML loader), applies the form's
 * overrides, submits the job and prints its stream; it terminates with the job's exit code. Stop cancels
 * the job (the worker saves a checkpoint) and the run ends when the job says `cancelled`.
 */
class JobProcessHandler(
    private val project: Project,
    private val configFile: Path,
    private val overrides: SpecOverrides,
) : ProcessHandler() {
    private val backend = BackendService.getInstance(project)
    @Volatile private var client: StudioClient? = null
    @Volatile private var jobId: String? = null
    @Volatile private var follower: JobFollower? = null
    @Volatile private var work: Job? = null

    init {
        // text sent before the console listens would be lost, so the work starts at startNotify
        addProcessListener(object : ProcessListener {
            override fun startNotified(event: ProcessEvent) {
                work = backend.scope.launch { notifyProcessTerminated(runJob()) }
            }
        })
    }

    private suspend fun runJob(): Int = try {
        submitAndFollow()
    } catch (e: StudioApiException) {
        emit(ConsoleLine(message("run.console.refused", e.message ?: "", e.hint ?: ""), isError = true))
        1
    } catch (e: IOException) {
        emit(ConsoleLine(e.message ?: e.toString(), isError = true))
        1
    }

    private suspend fun submitAndFollow(): Int {
        emit(ConsoleLine(message("run.console.backend"), isSystem = true))
        val studio = backend.client().also { client = it }
        val spec = loadSpec() ?: return 2
        overrides.applyTo(spec)
        val job = withContext(Dispatchers.IO) { studio.submit(spec) }
        jobId = job.id
        emit(ConsoleLine(message("run.console.submitted", job.name, job.id), isSystem = true))
        TrainingWindow.getInstance(project).reveal(job.id)
        val follow = JobFollower(studio).also { follower = it }
        val finished = blockingUntilCancelled(follow) {
            follow.follow(job.id, onDrop = { emit(ConsoleLine(message("run.console.reconnecting", it.message ?: ""), isSystem = true)) }) { event ->
                ConsoleLines.of(event)?.let(::emit)
            }
        }
        return JobState.exitCode(finished?.state ?: JobState.CANCELLED)
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
        val id = jobId
        val studio = client
        if (id == null || studio == null) {
            work?.cancel() // not submitted yet: nothing to cancel on the server
            notifyProcessTerminated(JobState.exitCode(JobState.CANCELLED))
            return
        }
        emit(ConsoleLine(message("run.console.cancelling"), isSystem = true))
        backend.scope.launch(Dispatchers.IO) {
            try {
                studio.cancel(id)
            } catch (e: IOException) {
                emit(ConsoleLine(e.message ?: e.toString(), isError = true))
                follower?.close()
            }
        }
    }

    /** Detach: stop watching, leave the job running (the Training tool window still shows it). */
    override fun detachProcessImpl() {
        follower?.close()
        work?.cancel()
        notifyProcessDetached()
    }

    override fun detachIsDefault(): Boolean = false

    override fun getProcessInput(): OutputStream? = null
}
