package dev.finetunestudio.core

import com.google.gson.JsonParseException
import java.io.IOException
import java.nio.file.Files
import java.nio.file.Path
import java.time.Duration

/** The outcome of looking for a running backend. */
sealed interface Discovery {
    /** A server that answered its health check; [source] says where it was found (for the log). */
    data class Found(val info: ServerInfo, val source: String) : Discovery

    /** None to reuse; [reason] is one sentence for the log or a notification. */
    data class NotRunning(val reason: String) : Discovery
}

/**
 * Finds a live backend the way every client of Fine-Tune Studio does (the CLI, `debug.capture`, the plugin):
 * `FINETUNE_STUDIO_URL` + `FINETUNE_STUDIO_TOKEN` when set, else `<state folder>/server.json`
 * (`{url, token, pid, version}`, written by `serve` once it listens). A server.json whose process is gone or
 * which does not answer `/api/health` is stale: a crashed server leaves it behind.
 *
 * The environment and the two probes are parameters so that tests need no real process or server.
 */
class ServerDiscovery(
    private val env: Map<String, String> = System.getenv(),
    private val isHealthy: (ServerInfo) -> Boolean = ::answersHealth,
    private val isProcessAlive: (Long) -> Boolean = { pid -> ProcessHandle.of(pid).map { it.isAlive }.orElse(false) },
) {
    /** The state folder: the one set in the settings, else `FINETUNE_STUDIO_HOME`, else `<project>/.finetune-studio`. */
    fun stateDir(projectDir: Path?, configured: String?): Path? = when {
        !configured.isNullOrBlank() -> resolveAgainst(projectDir, configured.trim())
        !env[HOME_VAR].isNullOrBlank() -> resolveAgainst(projectDir, env.getValue(HOME_VAR).trim())
        projectDir != null -> projectDir.resolve(STATE_DIR_NAME)
        else -> null
    }

    fun discover(stateDir: Path?): Discovery {
        val url = env[URL_VAR]
        if (!url.isNullOrBlank()) {
            val info = ServerInfo(url = url.trim(), token = env[TOKEN_VAR].orEmpty().trim())
            return if (isHealthy(info)) Discovery.Found(info, "\$$URL_VAR")
            else Discovery.NotRunning("\$$URL_VAR is set to $url, but no Fine-Tune Studio server answers there")
        }
        if (stateDir == null) return Discovery.NotRunning("the project has no folder for .finetune-studio")
        val file = stateDir.resolve(SERVER_JSON)
        if (!Files.isRegularFile(file)) return Discovery.NotRunning("no server is running for $stateDir (no $SERVER_JSON)")
        val info = try {
            readServerJson(file)
        } catch (e: IOException) {
            return Discovery.NotRunning("cannot read $file: ${e.message}")
        }
        if (info.pid > 0 && !isProcessAlive(info.pid)) {
            return Discovery.NotRunning("$file is stale: its server (process ${info.pid}) is gone")
        }
        if (!isHealthy(info)) return Discovery.NotRunning("the server of $file (${info.url}) does not answer")
        return Discovery.Found(info, file.toString())
    }

    /**
     * Waits for a server that the plugin just started (process [pid], started at [startedAtMillis]) to write
     * its server.json and answer. A server.json older than the start is the previous server's. Throws
     * [IOException] when [stillRunning] turns false (the process died: the caller has its stderr) or
     * after [timeout].
     */
    fun awaitStarted(
        stateDir: Path,
        pid: Long,
        startedAtMillis: Long,
        timeout: Duration,
        stillRunning: () -> Boolean,
        pollMillis: Long = 200,
    ): ServerInfo {
        val file = stateDir.resolve(SERVER_JSON)
        val deadline = System.nanoTime() + timeout.toNanos()
        while (System.nanoTime() < deadline) {
            if (!stillRunning()) throw IOException("the backend exited before it was ready")
            val info = freshServerJson(file, pid, startedAtMillis)
            if (info != null && isHealthy(info)) return info
            try {
                Thread.sleep(pollMillis)
            } catch (e: InterruptedException) {
                Thread.currentThread().interrupt()
                throw IOException("interrupted while waiting for the backend", e)
            }
        }
        throw IOException("the backend did not become ready within ${timeout.seconds} s (no answer from $file)")
    }

    private fun freshServerJson(file: Path, pid: Long, startedAtMillis: Long): ServerInfo? {
        if (!Files.isRegularFile(file)) return null
        return try {
            val info = readServerJson(file)
            // a venv's python can be a launcher whose child is the server, so the pid may differ; then the
            // file's age tells whether it is ours (the file system's clock granularity can be a second)
            val fresh = Files.getLastModifiedTime(file).toMillis() >= startedAtMillis - 1_000
            if (info.pid == pid || fresh) info else null
        } catch (e: IOException) {
            null // half-written by the server right now: the next poll reads it whole
        }
    }

    companion object {
        const val STATE_DIR_NAME = ".finetune-studio"
        const val SERVER_JSON = "server.json"
        const val HOME_VAR = "FINETUNE_STUDIO_HOME"
        const val URL_VAR = "FINETUNE_STUDIO_URL"
        const val TOKEN_VAR = "FINETUNE_STUDIO_TOKEN"

        fun readServerJson(file: Path): ServerInfo {
            val text = Files.readString(file)
            val info = try {
                StudioJson.fromJson(text, ServerInfo::class.java)
            } catch (e: JsonParseException) {
                throw IOException("not valid JSON: ${e.message}", e)
            }
            if (info.url.isBlank()) throw IOException("it has no url")
            return info
        }

        fun answersHealth(info: ServerInfo): Boolean = try {
            StudioClient(info.url, null, requestTimeout = Duration.ofSeconds(2)).health().status == "ok"
        } catch (e: IOException) {
            false
        } catch (e: JsonParseException) {
            false // something else listens there
        } catch (e: IllegalArgumentException) {
            false // a url that is not a URL
        }

        private fun resolveAgainst(projectDir: Path?, path: String): Path {
            val expanded = if (path.startsWith("~")) System.getProperty("user.home") + path.substring(1) else path
            val candidate = Path.of(expanded)
            return if (candidate.isAbsolute || projectDir == null) candidate else projectDir.resolve(candidate)
        }
    }
}
