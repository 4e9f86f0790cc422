package dev.finetunestudio.core

import com.google.gson.JsonParseException
import java.io.IOException
import java.nio.file.Files
import java.nio.file.NoSuchFileException
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
 * Finds a live backend by the one rule of every Fine-Tune Studio client (docs/discovery.md; the Python side is
 * `finetune_studio/discovery.py`):
 * 1. `FINETUNE_STUDIO_URL` + `FINETUNE_STUDIO_TOKEN` both set: that server, taken as given (one of them alone
 *    is an error);
 * 2. else the state folder set in the plugin's settings, or else `FINETUNE_STUDIO_HOME`: its server.json only;
 * 3. else `.finetune-studio/server.json` in the project folder or the nearest parent that has one.
 * A server.json (`{url, token, pid, version}`, written by `serve` once it listens) counts only when it parses,
 * its process is alive and `/api/health` answers within 2 s with that same pid: a crashed server leaves its
 * file behind, and its port may since belong to another server.
 *
 * The environment and the two probes are parameters so that tests need no real process or server.
 */
class ServerDiscovery(
    private val env: Map<String, String> = System.getenv(),
    private val health: (String) -> Health? = ::probeHealth,
    private val isProcessAlive: (Long) -> Boolean = { pid -> ProcessHandle.of(pid).map { it.isAlive }.orElse(false) },
) {
    /**
     * The state folder where the plugin starts a server when [discover] finds none: the one set in the settings,
     * else `FINETUNE_STUDIO_HOME`, else `<project>/.finetune-studio`.
     */
    fun stateDir(projectDir: Path?, configured: String?): Path? =
        explicitStateDir(projectDir, configured)?.first ?: projectDir?.resolve(STATE_DIR_NAME)

    /** The state folder named by the settings or the environment, and which of them named it. */
    private fun explicitStateDir(projectDir: Path?, configured: String?): Pair<Path, String>? = when {
        !configured.isNullOrBlank() -> resolveAgainst(projectDir, configured.trim()) to "the settings' state folder"
        !env[HOME_VAR].isNullOrBlank() -> resolveAgainst(projectDir, env.getValue(HOME_VAR).trim()) to HOME_VAR
        else -> null
    }

    /** The server for the project in [projectDir], by the rule above; [configured] is the settings' state folder. */
    fun discover(projectDir: Path?, configured: String? = null): Discovery {
        val url = env[URL_VAR]?.trim().orEmpty()
        val token = env[TOKEN_VAR]?.trim().orEmpty()
        if (url.isNotEmpty() && token.isNotEmpty()) return Discovery.Found(ServerInfo(url.trimEnd('/'), token), "environment")
        if (url.isNotEmpty() || token.isNotEmpty()) {
            val (set, unset) = if (url.isNotEmpty()) URL_VAR to TOKEN_VAR else TOKEN_VAR to URL_VAR
            return Discovery.NotRunning("$set is set but $unset is not: set both, or neither")
        }
        val explicit = explicitStateDir(projectDir, configured)
        if (explicit != null) return check(explicit.first.resolve(SERVER_JSON), " (${explicit.second})")
        if (projectDir == null) return Discovery.NotRunning("the project has no folder to look for $STATE_DIR_NAME in")
        val start = projectDir.toAbsolutePath().normalize()
        val file = generateSequence(start) { it.parent }.map { it.resolve(STATE_DIR_NAME).resolve(SERVER_JSON) }
            .firstOrNull { Files.isRegularFile(it) }
            ?: return Discovery.NotRunning("no $STATE_DIR_NAME/$SERVER_JSON in $start or any folder above it")
        return check(file, "")
    }

    /** [file]'s server if it counts; else why not, with [where] after the file's name. */
    private fun check(file: Path, where: String): Discovery {
        val info = try {
            readServerJson(file)
        } catch (e: NoSuchFileException) {
            return Discovery.NotRunning("$file$where does not exist")
        } catch (e: IOException) {
            return Discovery.NotRunning("$file$where cannot be read: ${e.message}")
        }
        if (info.pid <= 0) return Discovery.NotRunning("$file$where has no valid pid (${info.pid})")
        if (!isProcessAlive(info.pid)) return Discovery.NotRunning("$file$where is stale: its server (process ${info.pid}) is gone")
        val answered = health(info.url)?.pid?.takeIf { it > 0 }
            ?: return Discovery.NotRunning("$file$where is stale: ${info.url}/api/health gave no answer naming process ${info.pid}")
        if (answered != info.pid) {
            return Discovery.NotRunning("$file$where is stale: ${info.url}/api/health answered for process $answered, not ${info.pid}")
        }
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
            if (info != null && answersHealth(info, health)) return info
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

        /** Whether [info]'s server answers `/api/health`, as the same process when [info] names one. */
        fun answersHealth(info: ServerInfo, health: (String) -> Health? = ::probeHealth): Boolean {
            val answered = health(info.url) ?: return false
            return info.pid <= 0 || answered.pid == info.pid
        }

        /** The 200 answer of [url]'s `/api/health` within 2 s, or null. */
        fun probeHealth(url: String): Health? = try {
            StudioClient(url, null, requestTimeout = Duration.ofSeconds(2)).health().takeIf { it.status == "ok" }
        } catch (e: IOException) {
            null
        } catch (e: JsonParseException) {
            null // something else listens there
        } catch (e: IllegalArgumentException) {
            null // a url that is not a URL
        }

        private fun resolveAgainst(projectDir: Path?, path: String): Path {
            val expanded = if (path.startsWith("~")) System.getProperty("user.home") + path.substring(1) else path
            val candidate = Path.of(expanded)
            return if (candidate.isAbsolute || projectDir == null) candidate else projectDir.resolve(candidate)
        }
    }
}
