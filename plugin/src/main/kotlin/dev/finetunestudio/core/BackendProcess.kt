package dev.finetunestudio.core

import java.io.BufferedReader
import java.io.File
import java.io.IOException
import java.io.InputStream
import java.io.InputStreamReader
import java.nio.ByteBuffer
import java.nio.channels.FileChannel
import java.nio.charset.StandardCharsets
import java.nio.file.Files
import java.nio.file.Path
import java.time.Duration
import java.util.ArrayDeque
import java.util.concurrent.TimeUnit

/**
 * A child process that the plugin supervises (the backend server, or a short `pip install`): its output
 * lines go to [onLine] as they come (the IDE sends them to idea.log), the last [keepLines] are kept for
 * error messages, and [stop] ends it the way the server expects: SIGTERM, a grace period, then SIGKILL of
 * it and its children; it is always reaped.
 *
 * A process started with a log file ([startDetached]) has no pipe to the IDE: its output goes to that
 * file, so it outlives the IDE without dying of a broken pipe at its next line; [recentOutput] then reads
 * the file's last lines.
 */
class BackendProcess private constructor(
    private val process: Process,
    private val keepLines: Int,
    private val onLine: (line: String, isError: Boolean) -> Unit,
    private val logFile: Path? = null,
    private val logStart: Long = 0,
) {
    private val recent = ArrayDeque<Line>()
    private val pumps = if (logFile != null) emptyList() else listOf(
        pump(process.inputStream, isError = false),
        pump(process.errorStream, isError = true),
    )

    val pid: Long get() = process.pid()
    val isAlive: Boolean get() = process.isAlive

    /** The last lines of output (stdout and stderr interleaved as read), oldest first. */
    fun recentOutput(): List<Line> {
        val log = logFile ?: return synchronized(recent) { recent.toList() }
        return try {
            FileChannel.open(log).use { channel ->
                // only what this process wrote: the file is appended to by every server of the folder
                val start = maxOf(logStart, channel.size() - TAIL_BYTES)
                val bytes = ByteBuffer.allocate((channel.size() - start).toInt().coerceAtLeast(0))
                channel.read(bytes, start)
                String(bytes.array(), StandardCharsets.UTF_8).lines().filter { it.isNotEmpty() }.takeLast(keepLines).map { Line(it, false) }
            }
        } catch (e: IOException) {
            listOf(Line("(could not read $log: ${e.message})", true))
        }
    }

    /** Waits for the process to exit and its output to be read; null on timeout. */
    fun waitFor(timeout: Duration): Int? {
        if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) return null
        for (pump in pumps) pump.join(1_000)
        return process.exitValue()
    }

    /** Blocks until the process exits (interruptible); its exit code. */
    fun awaitExit(): Int = process.waitFor()

    /** SIGTERM (a graceful shutdown for uvicorn), then SIGKILL after [grace]; returns the exit code. */
    fun stop(grace: Duration = Duration.ofSeconds(5)): Int {
        if (process.isAlive) {
            // through the handle: Process.destroy() would also close the pipes and lose the last lines
            process.toHandle().destroy()
            if (!process.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS)) {
                // the server should have stopped its workers; whatever is left goes with it
                process.descendants().forEach { it.destroyForcibly() }
                process.toHandle().destroyForcibly()
                process.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS)
            }
        }
        for (pump in pumps) pump.join(1_000)
        return if (process.isAlive) -1 else process.exitValue()
    }

    private fun pump(stream: InputStream, isError: Boolean): Thread =
        Thread({
            try {
                BufferedReader(InputStreamReader(stream, StandardCharsets.UTF_8)).use { reader ->
                    while (true) {
                        val line = reader.readLine() ?: break
                        synchronized(recent) {
                            recent.addLast(Line(line, isError))
                            while (recent.size > keepLines) recent.removeFirst()
                        }
                        onLine(line, isError)
                    }
                }
            } catch (e: IOException) {
                // the pipe closes when the process is killed: nothing more to read
            }
        }, "Fine-Tune Studio process output (pid ${process.pid()})").apply {
            isDaemon = true
            start()
        }

    companion object {
        /** Starts [command] in [workDir] with [environment] added to the IDE's own environment. */
        fun start(
            command: List<String>,
            workDir: Path? = null,
            environment: Map<String, String> = BackendCommand.environment,
            keepLines: Int = 40,
            onLine: (line: String, isError: Boolean) -> Unit = { _, _ -> },
        ): BackendProcess {
            val builder = ProcessBuilder(command)
            if (workDir != null) builder.directory(workDir.toFile())
            builder.environment().putAll(environment)
            return BackendProcess(builder.start(), keepLines, onLine)
        }

        /**
         * Starts [command] with its stdout and stderr appended to [logFile] instead of pipes (see the class
         * comment); use with [BackendCommand.inOwnSession] for a server that outlives the IDE.
         */
        fun startDetached(
            command: List<String>,
            logFile: Path,
            workDir: Path? = null,
            environment: Map<String, String> = BackendCommand.environment,
            keepLines: Int = 40,
        ): BackendProcess {
            logFile.parent?.let { Files.createDirectories(it) }
            val logStart = if (Files.exists(logFile)) Files.size(logFile) else 0L
            val builder = ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                .redirectInput(ProcessBuilder.Redirect.from(File(if (isWindows()) "NUL" else "/dev/null")))
            if (workDir != null) builder.directory(workDir.toFile())
            builder.environment().putAll(environment)
            return BackendProcess(builder.start(), keepLines, { _, _ -> }, logFile, logStart)
        }

        private fun isWindows(): Boolean = System.getProperty("os.name").orEmpty().startsWith("Windows")

        private const val TAIL_BYTES = 64 * 1024L

        /** Runs a short command to its end (or [timeout]): exit code (null on timeout) and its output. */
        fun run(command: List<String>, timeout: Duration, workDir: Path? = null, onLine: (String, Boolean) -> Unit = { _, _ -> }): Finished {
            val process = start(command, workDir, keepLines = 200, onLine = onLine)
            val code = process.waitFor(timeout) ?: run { process.stop(Duration.ofSeconds(2)); null }
            return Finished(code, process.recentOutput())
        }
    }

    data class Line(val text: String, val isError: Boolean)

    data class Finished(val exitCode: Int?, val output: List<Line>) {
        val ok: Boolean get() = exitCode == 0
        val stdout: String get() = output.filterNot { it.isError }.joinToString("\n") { it.text }
        val stderr: String get() = output.filter { it.isError }.joinToString("\n") { it.text }
    }
}
