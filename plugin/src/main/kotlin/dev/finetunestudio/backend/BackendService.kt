package dev.finetunestudio.backend

import com.intellij.openapi.Disposable
import com.intellij.openapi.components.Service
import com.intellij.openapi.components.service
import com.intellij.openapi.diagnostic.Logger
import com.intellij.openapi.project.Project
import com.intellij.platform.ide.progress.withBackgroundProgress
import dev.finetunestudio.FineTuneStudioBundle.message
import dev.finetunestudio.core.BackendCommand
import dev.finetunestudio.core.BackendProcess
import dev.finetunestudio.core.Discovery
import dev.finetunestudio.core.InterpreterChoice
import dev.finetunestudio.core.ServerDiscovery
import dev.finetunestudio.core.ServerInfo
import dev.finetunestudio.core.StudioClient
import dev.finetunestudio.settings.FineTuneSettings
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.launch
import kotlinx.coroutines.runInterruptible
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock
import kotlinx.coroutines.withContext
import java.io.IOException
import java.nio.file.Path
import java.time.Duration

/**
 * Owns the project's backend: reuses a live server of `.finetune-studio/server.json`, else starts
 * `python -m finetune_studio serve` with the project's interpreter and waits for its health; publishes
 * Stopped / Starting / Running / Failed; notifies once per failure (Restart, and Install when the package
 * is missing). The server it starts runs detached, in a session of its own with its output in
 * `<state folder>/server.log`: closing the project or the IDE leaves it training, the next project open
 * finds it through `server.json`, and it stops itself once idle. Every blocking step runs on
 * [Dispatchers.IO] in the injected [scope], never on the EDT.
 */
@Service(Service.Level.PROJECT)
class BackendService(private val project: Project, internal val scope: CoroutineScope) : Disposable {
    sealed interface State {
        data object Stopped : State
        data object Starting : State
        /** [owned]: this service started the process (Restart stops it); else it reuses someone else's server. */
        data class Running(val info: ServerInfo, val owned: Boolean) : State
        data class Failed(val reason: String, val python: String?, val missingPackage: Boolean) : State
    }

    private val mutableState = MutableStateFlow<State>(State.Stopped)
    val state: StateFlow<State> = mutableState.asStateFlow()

    private val startLock = Mutex()
    private val discovery = ServerDiscovery()
    @Volatile private var process: BackendProcess? = null
    private var watchers: Job? = null

    /** The client of the running backend, starting it first when needed. Throws [IOException] with the reason. */
    suspend fun client(): StudioClient = withContext(Dispatchers.IO) {
        startLock.withLock {
            val current = mutableState.value
            if (current is State.Running && ServerDiscovery.answersHealth(current.info)) return@withLock StudioClient(current.info)
            connectOrStart()
        }
    }

    /** The client when the backend is known to run; never starts anything (for cheap UI updates). */
    fun clientIfRunning(): StudioClient? = (mutableState.value as? State.Running)?.let { StudioClient(it.info) }

    /** Starts (or reuses) the backend in the background; failures end up in [state] and a notification. */
    fun start() {
        scope.launch { ignoreFailure { client() } }
    }

    fun restart() {
        scope.launch {
            startLock.withLock { withContext(Dispatchers.IO) { stopOwnProcess() } }
            mutableState.value = State.Stopped
            ignoreFailure { client() }
        }
    }

    /** `pip install finetune-studio` into [python] with a progress indicator, then a restart. */
    fun installPackage(python: String) {
        scope.launch {
            val result = withBackgroundProgress(project, message("install.progress", python)) {
                runInterruptible(Dispatchers.IO) {
                    BackendProcess.run(BackendCommand.pipInstall(python), Duration.ofMinutes(15)) { line, _ -> LOG.info("pip: $line") }
                }
            }
            if (result.ok) {
                StudioNotifications.info(project, message("install.done.title"), message("install.done.text", python))
                restart()
            } else {
                val tail = result.output.takeLast(8).joinToString("\n") { it.text }
                StudioNotifications.error(project, message("install.failed.title"), tail)
            }
        }
    }

    private fun connectOrStart(): StudioClient {
        mutableState.value = State.Starting
        val settings = FineTuneSettings.getInstance(project).state
        val projectDir = project.basePath?.let { Path.of(it) }
        val stateDir = discovery.stateDir(projectDir, settings.stateDir)
            ?: return fail(message("backend.noStateDir"), null, missingPackage = false)
        when (val found = discovery.discover(projectDir, settings.stateDir)) {
            is Discovery.Found -> {
                LOG.info("Fine-Tune Studio: reusing the server at ${found.info.url} (from ${found.source})")
                return running(found.info, owned = false)
            }
            is Discovery.NotRunning -> LOG.info("Fine-Tune Studio: ${found.reason}; starting one")
        }
        val python = when (val choice = PythonInterpreter.choose(project)) {
            is InterpreterChoice.Found -> choice.path
            is InterpreterChoice.Missing -> return fail(choice.reason, null, missingPackage = false)
        }
        val check = try {
            BackendProcess.run(BackendCommand.versionCheck(python), Duration.ofSeconds(60))
        } catch (e: IOException) {
            return fail(e.message ?: e.toString(), python, missingPackage = false)
        }
        if (!check.ok) {
            val missing = BackendCommand.isMissingPackage(check.stderr)
            val reason = if (missing) message("backend.missingPackage", python)
            else check.stderr.lines().takeLast(5).joinToString("\n").ifBlank { message("backend.noAnswer", python) }
            return fail(reason, python, missing)
        }
        val startedAt = System.currentTimeMillis()
        val command = BackendCommand.inOwnSession(BackendCommand.serve(python, stateDir, settings.port))
        val log = stateDir.resolve(SERVER_LOG)
        LOG.info("Fine-Tune Studio: starting ${command.joinToString(" ")} (output in $log)")
        val started = try {
            BackendProcess.startDetached(command, log, projectDir)
        } catch (e: IOException) {
            return fail(e.message ?: e.toString(), python, missingPackage = false) // not executable, no such folder
        }
        process = started
        val info = try {
            discovery.awaitStarted(stateDir, started.pid, startedAt, STARTUP_TIMEOUT, stillRunning = { started.isAlive })
        } catch (e: IOException) {
            started.stop()
            process = null
            val output = started.recentOutput().map { it.text }
            val reason = listOfNotNull(e.message, output.takeLast(6).joinToString("\n").ifEmpty { null }).joinToString("\n")
            return fail(reason, python, BackendCommand.isMissingPackage(output.joinToString("\n")))
        }
        watchExit(started)
        return running(info, owned = true)
    }

    private fun running(info: ServerInfo, owned: Boolean): StudioClient {
        mutableState.value = State.Running(info, owned)
        val client = StudioClient(info)
        watchers?.cancel()
        watchers = scope.launch { JobWatcher(project, client).run() }
        return client
    }

    private fun fail(reason: String, python: String?, missingPackage: Boolean): Nothing {
        val previous = mutableState.value
        mutableState.value = State.Failed(reason, python, missingPackage)
        // one balloon per failure, not one per retry of the same failure
        if (previous !is State.Failed || previous.reason != reason) {
            StudioNotifications.backendFailed(project, reason, python, missingPackage)
        }
        throw IOException(reason)
    }

    /** A server we started that dies later turns the state to Failed (with its last words). */
    private fun watchExit(started: BackendProcess) {
        scope.launch(Dispatchers.IO) {
            val code = runInterruptible { started.awaitExit() }
            if (process !== started) return@launch // stopped on purpose
            process = null
            watchers?.cancel()
            val tail = started.recentOutput().takeLast(6).joinToString("\n") { it.text }
            startLock.withLock {
                ignoreFailure { fail(message("backend.exited", code) + if (tail.isEmpty()) "" else "\n$tail", null, false) }
            }
        }
    }

    private fun stopOwnProcess() {
        watchers?.cancel()
        val own = process ?: return
        process = null
        own.stop()
    }

    private inline fun ignoreFailure(block: () -> Unit) {
        try {
            block()
        } catch (e: IOException) {
            // already in [state] and notified
        }
    }

    /**
     * The project closes: the injected scope (and with it the exit watch and the job watcher) is cancelled
     * by the platform. The server is left running on purpose: its jobs train on, and it stops itself once
     * no job runs and no client is connected (issue 10).
     */
    override fun dispose() {
        process?.let { LOG.info("Fine-Tune Studio: leaving the backend (pid ${it.pid}) running; it stops itself when idle") }
        process = null
    }

    companion object {
        private val LOG = Logger.getInstance(BackendService::class.java)
        private val STARTUP_TIMEOUT: Duration = Duration.ofSeconds(90)
        /** In the state folder, next to server.json: the output of every server the plugin started there. */
        const val SERVER_LOG = "server.log"

        fun getInstance(project: Project): BackendService = project.service()
    }
}
