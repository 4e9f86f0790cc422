package dev.finetunestudio.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.io.IOException
import java.nio.file.Files
import java.nio.file.Path
import java.time.Duration
import kotlin.concurrent.thread

class ServerDiscoveryTest {
    @get:Rule
    val temp = TemporaryFolder()

    private val alive = setOf(4242L, 5555L)

    /** Every url answers its health check as process 4242 unless [answer] says otherwise. */
    private fun discovery(env: Map<String, String> = emptyMap(), answer: (String) -> Health? = { Health("ok", "0.1.0", 4242) }) =
        ServerDiscovery(env, answer) { pid -> pid in alive }

    private fun writeServerJson(dir: Path, pid: Long = 4242, url: String = "http://127.0.0.1:5123"): Path {
        Files.createDirectories(dir)
        return Files.writeString(dir.resolve("server.json"), """{"url": "$url", "token": "tok", "pid": $pid, "version": "0.1.0"}""")
    }

    private fun reason(found: Discovery): String = (found as Discovery.NotRunning).reason

    @Test
    fun `state folder comes from the settings, then FINETUNE_STUDIO_HOME, then the project`() {
        val project = temp.root.toPath()
        assertEquals(project.resolve(".finetune-studio"), discovery().stateDir(project, null))
        assertEquals(project.resolve(".finetune-studio"), discovery().stateDir(project, "  "))
        assertEquals(Path.of("/srv/fts"), discovery(mapOf("FINETUNE_STUDIO_HOME" to "/srv/fts")).stateDir(project, null))
        assertEquals(project.resolve("state"), discovery(mapOf("FINETUNE_STUDIO_HOME" to "/srv/fts")).stateDir(project, "state"))
        assertEquals(null, discovery().stateDir(null, null))
    }

    @Test
    fun `finds a live server json in the project folder or the nearest parent that has one`() {
        val root = temp.root.toPath()
        val file = writeServerJson(root.resolve(".finetune-studio"))
        val project = Files.createDirectories(root.resolve("work").resolve("project"))
        for (dir in listOf(root, project)) {
            val found = discovery().discover(dir) as Discovery.Found
            assertEquals(ServerInfo("http://127.0.0.1:5123", "tok", 4242, "0.1.0"), found.info)
            assertEquals(file.toString(), found.source)
        }
    }

    @Test
    fun `the nearest server json decides even when it is stale`() {
        val root = temp.root.toPath()
        writeServerJson(root.resolve(".finetune-studio"))
        val project = root.resolve("project")
        writeServerJson(project.resolve(".finetune-studio"), pid = 999_999)
        val why = reason(discovery().discover(project))
        assertTrue(why, why.contains(project.resolve(".finetune-studio").toString()) && why.contains("process 999999) is gone"))
    }

    @Test
    fun `a server json counts only when its process lives and answers health with the same pid`() {
        val dir = temp.root.toPath()
        writeServerJson(dir.resolve(".finetune-studio"), pid = 999_999)
        val gone = reason(discovery().discover(dir))
        assertTrue(gone, gone.contains("process 999999") && gone.contains("gone"))

        writeServerJson(dir.resolve(".finetune-studio"), pid = 5555) // alive, but the port answers as another process
        val other = reason(discovery().discover(dir))
        assertTrue(other, other.contains("answered for process 4242, not 5555"))

        writeServerJson(dir.resolve(".finetune-studio"), pid = 4242)
        for (answer in listOf<Health?>(null, Health("ok", "0.1.0", 0))) { // no answer, or an older server without a pid
            val silent = reason(discovery(answer = { answer }).discover(dir))
            assertTrue(silent, silent.contains("gave no answer naming process 4242"))
        }
    }

    @Test
    fun `missing or broken server json says why`() {
        val dir = temp.root.toPath()
        assertTrue(reason(discovery().discover(dir)).contains("no .finetune-studio/server.json in $dir or any folder above"))
        Files.createDirectories(dir.resolve(".finetune-studio"))
        for (text in listOf("{not json", "", "[]")) {
            Files.writeString(dir.resolve(".finetune-studio").resolve("server.json"), text)
            assertTrue(text, reason(discovery().discover(dir)).contains("cannot be read"))
        }
        Files.writeString(dir.resolve(".finetune-studio").resolve("server.json"), """{"url": "http://x", "token": "t"}""")
        assertTrue(reason(discovery().discover(dir)).contains("no valid pid"))
        assertTrue(discovery().discover(null) is Discovery.NotRunning)
    }

    @Test
    fun `environment variables beat server json and are taken as given`() {
        val dir = temp.root.toPath()
        writeServerJson(dir.resolve(".finetune-studio"))
        val env = mapOf("FINETUNE_STUDIO_URL" to "http://127.0.0.1:9000/", "FINETUNE_STUDIO_TOKEN" to "env-token",
                        "FINETUNE_STUDIO_HOME" to dir.resolve(".finetune-studio").toString())
        val found = discovery(env, answer = { null }).discover(dir, configured = "state") as Discovery.Found
        assertEquals(ServerInfo("http://127.0.0.1:9000", "env-token", 0, ""), found.info)
        assertEquals("environment", found.source)
    }

    @Test
    fun `half of the environment pair is an error`() {
        val dir = temp.root.toPath()
        writeServerJson(dir.resolve(".finetune-studio"))
        val urlOnly = reason(discovery(mapOf("FINETUNE_STUDIO_URL" to "http://127.0.0.1:9000")).discover(dir))
        assertTrue(urlOnly, urlOnly.contains("FINETUNE_STUDIO_URL is set but FINETUNE_STUDIO_TOKEN is not"))
        val tokenOnly = reason(discovery(mapOf("FINETUNE_STUDIO_TOKEN" to "t")).discover(dir))
        assertTrue(tokenOnly, tokenOnly.contains("FINETUNE_STUDIO_TOKEN is set but FINETUNE_STUDIO_URL is not"))
    }

    @Test
    fun `FINETUNE_STUDIO_HOME and the settings' folder are the only place looked at, without walking up`() {
        val root = temp.root.toPath()
        writeServerJson(root.resolve(".finetune-studio"))
        val project = Files.createDirectories(root.resolve("project"))
        assertTrue(discovery().discover(project) is Discovery.Found) // walking up finds the outer one
        val home = project.resolve(".finetune-studio")
        val viaHome = reason(discovery(mapOf("FINETUNE_STUDIO_HOME" to home.toString())).discover(project))
        assertTrue(viaHome, viaHome.contains("${home.resolve("server.json")} (FINETUNE_STUDIO_HOME) does not exist"))
        val viaSettings = reason(discovery().discover(project, configured = "state"))
        assertTrue(viaSettings, viaSettings.contains("${project.resolve("state").resolve("server.json")} (the settings' state folder)"))
        writeServerJson(project.resolve("state"))
        assertTrue(discovery().discover(project, configured = "state") is Discovery.Found)
    }

    @Test
    fun `awaitStarted waits for the new server json and its health`() {
        val dir = temp.root.toPath()
        writeServerJson(dir, pid = 1111, url = "http://old") // the previous server's, written long ago
        Files.setLastModifiedTime(dir.resolve("server.json"), java.nio.file.attribute.FileTime.fromMillis(0))
        val started = System.currentTimeMillis()
        val writer = thread {
            Thread.sleep(300)
            writeServerJson(dir, pid = 4242, url = "http://new")
        }
        val info = discovery(answer = { url -> Health("ok", "0.1.0", 4242).takeIf { url == "http://new" } })
            .awaitStarted(dir, pid = 4242, startedAtMillis = started, timeout = Duration.ofSeconds(5), stillRunning = { true }, pollMillis = 20)
        writer.join()
        assertEquals("http://new", info.url)
    }

    @Test
    fun `awaitStarted fails at once when the process dies and after the timeout`() {
        val dir = temp.root.toPath()
        try {
            discovery().awaitStarted(dir, 1, System.currentTimeMillis(), Duration.ofSeconds(5), stillRunning = { false })
            fail("expected an IOException")
        } catch (e: IOException) {
            assertTrue(e.message.orEmpty().contains("exited"))
        }
        try {
            discovery().awaitStarted(dir, 1, System.currentTimeMillis(), Duration.ofMillis(200), stillRunning = { true }, pollMillis = 20)
            fail("expected an IOException")
        } catch (e: IOException) {
            assertTrue(e.message.orEmpty().contains("did not become ready"))
        }
    }

    @Test
    fun `the real health probe talks to a server and compares its pid`() {
        FakeServer().use { server ->
            server.route("/api/health") { exchange, _ ->
                FakeServer.json(exchange, 200, """{"status": "ok", "version": "0.1.0", "pid": 31337}""")
            }
            assertEquals(31337L, ServerDiscovery.probeHealth(server.url)?.pid)
            assertTrue(ServerDiscovery.answersHealth(ServerInfo(server.url, "t", 31337, "")))
            assertEquals(false, ServerDiscovery.answersHealth(ServerInfo(server.url, "t", 1, "")))
            assertTrue(ServerDiscovery.answersHealth(ServerInfo(server.url, "t", 0, ""))) // from the environment
        }
        FakeServer().use { server ->
            server.route("/api/health") { exchange, _ -> FakeServer.json(exchange, 500, """{"detail": "boom"}""") }
            assertEquals(null, ServerDiscovery.probeHealth(server.url))
        }
        assertEquals(null, ServerDiscovery.probeHealth("not a url"))
    }
}
