package dev.finetunestudio.core

import java.nio.file.Files
import java.nio.file.Path

/**
 * The command lines the plugin runs with the project's Python interpreter. All go through
 * `python -m`/`python -c` so that they use that interpreter's packages, never a `finetune-studio` script
 * that happens to be first on the PATH.
 */
object BackendCommand {
    const val DISTRIBUTION = "finetune-studio"
    const val MODULE = "finetune_studio"

    /** `python -m finetune_studio serve --data-dir D --port P`; port 0 lets the OS pick a free one. */
    fun serve(python: String, dataDir: Path, port: Int = 0): List<String> {
        require(port in 0..65535) { "port $port is out of range: use 0 (any free port) to 65535" }
        return listOf(python, "-m", MODULE, "serve", "--data-dir", dataDir.toString(), "--port", port.toString())
    }

    /**
     * [command] (a `python -m module args...` line) run in a session of its own on POSIX systems, so that
     * closing the IDE, or the terminal it was started from, never signals it: the server outlives its front
     * ends like a Gradle daemon (DESIGN.md, Data flow 1). The same process (same pid) calls `os.setsid()`
     * and then runs the module, so `server.json`'s pid is the one the IDE started. On Windows, where a child
     * does not die with its parent, the command is unchanged.
     */
    fun inOwnSession(command: List<String>, posix: Boolean = isPosix()): List<String> {
        if (!posix) return command
        require(command.size >= 3 && command[1] == "-m") { "expected a `python -m module ...` command, got $command" }
        return listOf(command[0], "-c", OWN_SESSION) + command.drop(2)
    }

    private fun isPosix(): Boolean = !System.getProperty("os.name").orEmpty().startsWith("Windows")

    // argv after -c: module, then its arguments; run like `python -m module args`
    private val OWN_SESSION = """
        import os, runpy, sys
        os.setsid()
        sys.argv = sys.argv[1:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    """.trimIndent()

    /**
     * What *Debug Fine-tune* runs under PyCharm's Python debugger: `python -m finetune_studio train <toml>`,
     * the job's training in this one process, reporting to the server of [stateDir] as an attached run
     * (`FINETUNE_STUDIO_HOME` makes its discovery find that server whatever the working folder), so that
     * an anomaly stops in the IDE's debugger. Runs in the TOML's folder, like the managed job's paths.
     */
    fun train(python: String, toml: Path, stateDir: Path): TrainCommand = TrainCommand(
        python = python,
        module = MODULE,
        arguments = listOf("train", toml.toString()),
        workingDirectory = toml.toAbsolutePath().parent,
        environment = environment + mapOf(STATE_DIR_VARIABLE to stateDir.toString()),
    )

    /** The environment variable naming the state folder (discovery rule b, docs/discovery.md). */
    const val STATE_DIR_VARIABLE = "FINETUNE_STUDIO_HOME"

    /** Prints the installed version; fails with ModuleNotFoundError when the package is missing. */
    fun versionCheck(python: String): List<String> =
        listOf(python, "-c", "import $MODULE; print($MODULE.__version__)")

    fun pipInstall(python: String): List<String> = listOf(python, "-m", "pip", "install", DISTRIBUTION)

    /**
     * Prints a `finetune.toml` as JobSpec JSON, validated and with its relative paths resolved against the
     * TOML's folder, by the backend's own loader: the plugin never parses TOML itself. A bad spec exits 2
     * with the problems on stderr.
     */
    fun loadSpec(python: String, toml: Path): List<String> = listOf(python, "-c", LOAD_SPEC, toml.toString())

    private val LOAD_SPEC = """
        import sys
        from pathlib import Path
        from finetune_studio.errors import SpecError
        from finetune_studio.spec import load_spec
        try:
            spec = load_spec(Path(sys.argv[1]))
        except (SpecError, OSError) as error:
            print(getattr(error, "message", None) or error, file=sys.stderr)
            sys.exit(2)
        print(spec.model_dump_json())
    """.trimIndent()

    /** Unbuffered, UTF-8 output: each log line reaches idea.log when it is written, whatever the locale. */
    val environment: Map<String, String> = mapOf("PYTHONUNBUFFERED" to "1", "PYTHONIOENCODING" to "utf-8")

    /** True when [stderr] says that the interpreter lacks the package (so "Install" is the fix to offer). */
    fun isMissingPackage(stderr: String): Boolean =
        "No module named '$MODULE" in stderr || "No module named $MODULE" in stderr
}

/**
 * A `python -m module arguments...` to run as a Python run configuration (module mode), so the IDE's own
 * debugger can start it; [commandLine] is the same thing as one argv.
 */
data class TrainCommand(
    val python: String,
    val module: String,
    val arguments: List<String>,
    val workingDirectory: Path,
    val environment: Map<String, String>,
) {
    val commandLine: List<String> get() = listOf(python, "-m", module) + arguments

    /** The arguments as one parameters string for a run configuration: quoted where they hold spaces or quotes. */
    val parameters: String get() = arguments.joinToString(" ") { quote(it) }

    private fun quote(argument: String): String =
        if (argument.isNotEmpty() && argument.none { it.isWhitespace() || it == '"' }) argument
        else "\"" + argument.replace("\"", "\\\"") + "\""
}

/** Which Python interpreter runs the backend, or why there is none. */
sealed interface InterpreterChoice {
    data class Found(val path: String, val source: String) : InterpreterChoice
    data class Missing(val reason: String) : InterpreterChoice

    companion object {
        /**
         * The interpreter set in the settings wins; then the project's Python SDKs in order. SDK homes that
         * are not local files (remote, WSL and Docker interpreters) cannot be started from here: they are
         * skipped and named in the reason.
         */
        fun choose(configured: String?, sdkHomes: List<String>): InterpreterChoice {
            if (!configured.isNullOrBlank()) {
                val path = configured.trim()
                return if (isLocalExecutable(path)) Found(path, "settings")
                else Missing("the interpreter set in Settings | Tools | Fine-Tune Studio does not exist: $path")
            }
            val local = sdkHomes.firstOrNull(::isLocalExecutable)
            if (local != null) return Found(local, "project interpreter")
            return if (sdkHomes.isEmpty()) Missing("the project has no Python interpreter")
            else Missing("the project's Python interpreter is not a local one (${sdkHomes.first()})")
        }

        private fun isLocalExecutable(path: String): Boolean = try {
            Files.isRegularFile(Path.of(path)) && Files.isExecutable(Path.of(path))
        } catch (e: java.nio.file.InvalidPathException) {
            false // e.g. "docker://image/python" on Windows
        }
    }
}
