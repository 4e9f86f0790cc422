package dev.finetunestudio.core

import com.google.gson.JsonObject
import java.io.IOException
import java.net.URI
import java.net.URLEncoder
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.charset.StandardCharsets
import java.time.Duration

/**
 * The plugin's client for the whole backend API (DESIGN.md, "HTTP API"). Blocking calls: the IDE makes them
 * on an IO thread. Errors: [StudioApiException] when the server answers with one, [IOException] when it
 * cannot be reached.
 *
 * The JDK client is built with NO_PROXY: the IDE installs a default ProxySelector for the user's proxy
 * settings, and a loopback server must never be asked for through a corporate proxy.
 */
class StudioClient(
    baseUrl: String,
    private val token: String?,
    private val http: HttpClient = defaultHttpClient(),
    private val requestTimeout: Duration = Duration.ofSeconds(30),
) {
    val baseUrl: String = baseUrl.trimEnd('/')

    constructor(info: ServerInfo) : this(info.url, info.token)

    fun health(): Health = get("/api/health", Health::class.java)

    fun system(): SystemInfo = get("/api/system", SystemInfo::class.java)

    fun jobSpecSchema(): JsonObject = get("/api/schema/job-spec", JsonObject::class.java)

    /** Submits a job spec (the JSON of a JobSpec); the server answers 422 naming each bad field. */
    fun submit(spec: JsonObject): Job = send("POST", "/api/jobs", spec.toString(), Job::class.java)

    fun submit(spec: JobSpec): Job = submit(StudioJson.toTree(spec).asJsonObject)

    fun jobs(): List<Job> = get("/api/jobs", JobList::class.java).jobs

    fun job(id: String): Job = get("/api/jobs/${seg(id)}", Job::class.java)

    /** Graceful stop: the worker saves a checkpoint first. */
    fun cancel(id: String): Job = send("POST", "/api/jobs/${seg(id)}/cancel", "", Job::class.java)

    fun resume(id: String): Job = send("POST", "/api/jobs/${seg(id)}/resume", "", Job::class.java)

    fun delete(id: String, files: Boolean = false) {
        call("DELETE", "/api/jobs/${seg(id)}" + if (files) "?files=true" else "", null)
    }

    fun metrics(id: String, names: List<String> = emptyList(), maxPoints: Int = 2000): Metrics {
        val query = buildString {
            append("?max_points=").append(maxPoints)
            if (names.isNotEmpty()) append("&names=").append(enc(names.joinToString(",")))
        }
        return get("/api/jobs/${seg(id)}/metrics$query", Metrics::class.java)
    }

    fun logs(id: String, after: Long = 0, limit: Int = 1000): Logs =
        get("/api/jobs/${seg(id)}/logs?after=$after&limit=$limit", Logs::class.java)

    fun stepBatch(id: String, step: Int): StepBatch = get("/api/jobs/${seg(id)}/steps/$step/batch", StepBatch::class.java)

    /**
     * The job's latest `eval` event (its [EvalPoint] carries the metrics, and the samples and confusion
     * matrix where the task shows them), or null before the first evaluation.
     */
    fun latestEval(id: String): StreamEvent? {
        val body = call("GET", "/api/jobs/${seg(id)}/evals/latest", null)
        return if (body.isBlank() || body.trim() == "null") null else StudioJson.fromJson(body, StreamEvent::class.java)
    }

    /**
     * Will [spec] fit, and how long will an epoch take (issue 16): the same body as [submit], answered
     * without loading weights. 422 names each bad field, like submit.
     */
    fun estimate(spec: JsonObject): Estimate = send("POST", "/api/estimate", spec.toString(), Estimate::class.java)

    /** What a run came from: spec, git commit and diff, data files, versions (issue 16). */
    fun lineage(id: String): Lineage = get("/api/jobs/${seg(id)}/lineage", Lineage::class.java)

    /** Whether the working tree still holds what the run came from (commit, files, data), before cloning it. */
    fun worktree(id: String): WorktreeCheck = get("/api/jobs/${seg(id)}/lineage/worktree", WorktreeCheck::class.java)

    /** Ingest from a reporter; idempotent by (attempt, seq). */
    fun ingest(id: String, batch: IngestBatch): IngestResult =
        send("POST", "/api/jobs/${seg(id)}/events", StudioJson.toJson(batch), IngestResult::class.java)

    fun openRun(run: RunCreate): Job = send("POST", "/api/runs", StudioJson.toJson(run), Job::class.java)

    /**
     * The SSE stream of one job: `metric`, `log`, `progress`, `eval`, `state` events, each carrying a
     * StreamEvent ([parseStreamEvent]). [after] starts after that seq (0 = from the beginning); reconnects
     * resume from the last event seen, backing off as [policy] says. An unknown job is a 404 before the
     * stream starts: [SseStream.run] throws it as a [StudioApiException] instead of reconnecting.
     */
    fun jobStream(id: String, after: Long = 0, policy: ReconnectPolicy = ReconnectPolicy()): SseStream =
        SseStream(http, policy) { lastEventId ->
            // the server reads ?after= before Last-Event-ID, so only the first connection sends it
            val query = if (lastEventId == null) "?after=$after" else ""
            streamRequest("/api/jobs/${seg(id)}/stream$query", lastEventId)
        }

    /** The SSE stream of job state changes (events `state`, data = a Job; see [parseJob]). */
    fun jobsStream(policy: ReconnectPolicy = ReconnectPolicy()): SseStream =
        SseStream(http, policy) { lastEventId -> streamRequest("/api/stream", lastEventId) }

    /**
     * The dashboard page for a browser or JCEF: the token in the query becomes a cookie at the server, which
     * then redirects to `/` keeping [theme]; the fragment ([DashboardRoute], `tensor=<id>`, `new`) picks the view.
     */
    fun dashboardUrl(fragment: String? = null, theme: String? = null): String = buildString {
        append(baseUrl).append("/?token=").append(enc(token.orEmpty()))
        if (theme != null) append("&theme=").append(enc(theme))
        if (!fragment.isNullOrEmpty()) append('#').append(fragment)
    }

    private fun streamRequest(path: String, lastEventId: String?): HttpRequest {
        val builder = authorized(path)
            .header("Accept", "text/event-stream")
            // only the headers are bounded; the body is an endless stream watched by SseStream
            .timeout(requestTimeout)
            .GET()
        if (lastEventId != null) builder.header("Last-Event-ID", lastEventId)
        return builder.build()
    }

    private fun <T> get(path: String, type: Class<T>): T = send("GET", path, null, type)

    private fun <T> send(method: String, path: String, body: String?, type: Class<T>): T =
        StudioJson.fromJson(call(method, path, body), type)

    private fun call(method: String, path: String, body: String?): String {
        val publisher = if (body == null) HttpRequest.BodyPublishers.noBody()
        else HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8)
        val builder = authorized(path).timeout(requestTimeout).method(method, publisher)
        if (body != null) builder.header("Content-Type", "application/json")
        val response = try {
            http.send(builder.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8))
        } catch (e: InterruptedException) {
            Thread.currentThread().interrupt()
            throw IOException("interrupted while calling $method $path", e)
        }
        if (response.statusCode() !in 200..299) throw StudioApiException.fromResponse(response.statusCode(), response.body())
        return response.body()
    }

    private fun authorized(path: String): HttpRequest.Builder {
        val builder = HttpRequest.newBuilder(URI.create(baseUrl + path))
        if (!token.isNullOrEmpty()) builder.header("Authorization", "Bearer $token")
        return builder
    }

    companion object {
        fun defaultHttpClient(): HttpClient = HttpClient.newBuilder()
            .proxy(HttpClient.Builder.NO_PROXY)
            // uvicorn speaks HTTP/1.1; asking for h2c would only add an Upgrade round
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5))
            .build()

        /** The data of a job stream's event is a whole StreamEvent. */
        fun parseStreamEvent(event: SseEvent): StreamEvent = StudioJson.fromJson(event.data, StreamEvent::class.java)

        /** The data of a `/api/stream` event is a whole Job. */
        fun parseJob(event: SseEvent): Job = StudioJson.fromJson(event.data, Job::class.java)

        private fun enc(text: String): String = URLEncoder.encode(text, StandardCharsets.UTF_8)

        /** A path segment: URLEncoder writes a space as '+', which in a path is a literal plus. */
        private fun seg(text: String): String = enc(text).replace("+", "%20")
    }
}
