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

    private val alive = setOf(4242L)

    private fun discovery(env: Map<String, String> = emptyMap(), healthy: (ServerInfo) -> Boolean = { true }) =
        ServerDiscovery(env, healthy) { pid -> pid in alive }

    private fun writeServerJson(dir: Path, pid: Long = 4242, url: String = "http://127.0.0.1:5123"): Path {
        Files.createDirectories(dir)
        return Files.writeString(dir.resolve("server.json"), """{"url": "$url", "token": "tok", "pid": $pid, "version": "0.1.0"}""")
    }

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
    fun `finds a live server through server json`() {
        val dir = temp.root.toPath().resolve(".finetune-studio")
        writeServerJson(dir)
        val found = discovery().discover(dir) as Discovery.Found
        assertEquals(ServerInfo("http://127.0.0.1:5123", "tok", 4242, "0.1.0"), found.info)
        assertTrue(found.source.endsWith("server.json"))
    }

    @Test
    fun `a server json whose process is gone or that does not answer is stale`() {
        val dir = temp.root.toPath()
        writeServerJson(dir, pid = 999_999)
        val gone = discovery().discover(dir) as Discovery.NotRunning
        assertTrue(gone.reason, gone.reason.contains("process 999999") && gone.reason.contains("gone"))

        writeServerJson(dir, pid = 4242)
        val silent = discovery(healthy = { false }).discover(dir) as Discovery.NotRunning
        assertTrue(silent.reason, silent.reason.contains("does not answer"))
    }

    @Test
    fun `missing or broken server json says why`() {
        val dir = temp.root.toPath()
        assertTrue((discovery().discover(dir) as Discovery.NotRunning).reason.contains("no server.json"))
        Files.writeString(dir.resolve("server.json"), "{not json")
        assertTrue((discovery().discover(dir) as Discovery.NotRunning).reason.contains("cannot read"))
        assertTrue(discovery().discover(null) is Discovery.NotRunning)
    }

    @Test
    fun `environment variables override server json`() {
        val dir = temp.root.toPath()
        writeServerJson(dir)
        val env = mapOf("FINETUNE_STUDIO_URL" to "http://127.0.0.1:9000", "FINETUNE_STUDIO_TOKEN" to "env-token")
        val found = discovery(env).discover(dir) as Discovery.Found
        assertEquals(ServerInfo("http://127.0.0.1:9000", "env-token", 0, ""), found.info)
        val down = discovery(env, healthy = { false }).discover(dir) as Discovery.NotRunning
        assertTrue(down.reason, down.reason.contains("FINETUNE_STUDIO_URL"))
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
        val info = discovery(healthy = { it.url == "http://new" })
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
    fun `the real health probe talks to a server`() {
        FakeServer().use { server ->
            server.route("/api/health") { exchange, _ -> FakeServer.json(exchange, 200, """{"status": "ok", "version": "0.1.0"}""") }
            assertTrue(ServerDiscovery.answersHealth(ServerInfo(server.url, "t", 1, "")))
        }
        assertEquals(false, ServerDiscovery.answersHealth(ServerInfo("not a url", "t", 1, "")))
    }
}
