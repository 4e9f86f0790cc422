package dev.finetunestudio.core

import java.io.IOException
import java.nio.file.Files
import java.nio.file.Path
import kotlin.system.exitProcess

/**
 * A real client built only from the core: submits a job spec and follows the job's event stream to its end,
 * printing one line per event. `tests/test_kotlin_client.py` runs it against the real server, which proves
 * the client, the SSE reader and the wire types against the Python side.
 *
 * Usage: `FollowJobMain <url> <token> <spec.json>`. Output lines:
 * `submitted <id> <state>`, then `event <seq> <type> <data JSON>` per event, then `finished <id> <state>`.
 * Exit code: 0 when the job completed (see [JobState.exitCode]), 3 for a usage or connection error.
 */
object FollowJobMain {
    @JvmStatic
    fun main(args: Array<String>) {
        if (args.size != 3) {
            System.err.println("usage: FollowJobMain <url> <token> <spec.json>")
            exitProcess(3)
        }
        val (url, token, specFile) = args
        val code = try {
            run(StudioClient(url, token), StudioJson.parseObject(Files.readString(Path.of(specFile))))
        } catch (e: StudioApiException) {
            System.err.println("the server refused: HTTP ${e.status} ${e.message}" + (e.hint?.let { " (hint: $it)" } ?: ""))
            3
        } catch (e: IOException) {
            System.err.println("cannot reach the server at $url: ${e.message}")
            3
        }
        exitProcess(code)
    }

    fun run(client: StudioClient, spec: com.google.gson.JsonObject): Int {
        val job = client.submit(spec)
        println("submitted ${job.id} ${job.state}")
        val finished = JobFollower(client).follow(
            job.id,
            onDrop = { System.err.println("stream dropped (${it.message}); resuming") },
        ) { event ->
            println("event ${event.seq} ${event.type} ${event.data}")
            System.out.flush()
        } ?: return 3
        println("finished ${finished.id} ${finished.state}")
        finished.error?.let { System.err.println("${it.type}: ${it.message}" + (it.hint?.let { h -> "\nhint: $h" } ?: "")) }
        return JobState.exitCode(finished.state)
    }
}
