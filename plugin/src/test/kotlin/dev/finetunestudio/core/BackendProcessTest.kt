package dev.finetunestudio.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.nio.file.Files
import java.nio.file.Path
import java.time.Duration
import java.util.concurrent.CopyOnWriteArrayList

/** Real child processes (/bin/sh), as the backend and pip are. */
class BackendProcessTest {
    @get:Rule
    val temp = TemporaryFolder()

    @Test
    fun `run collects stdout and stderr apart and the exit code`() {
        val seen = CopyOnWriteArrayList<Pair<String, Boolean>>()
        val result = BackendProcess.run(listOf("sh", "-c", "echo '{\"a\": 1}'; echo oops >&2; exit 3"), Duration.ofSeconds(10)) { line, err -> seen += line to err }
        assertEquals(3, result.exitCode)
        assertFalse(result.ok)
        assertEquals("{\"a\": 1}", result.stdout)
        assertEquals("oops", result.stderr)
        assertEquals(setOf("{\"a\": 1}" to false, "oops" to true), seen.toSet())
    }

    @Test
    fun `the environment reaches the child`() {
        val result = BackendProcess.run(listOf("sh", "-c", "echo \$PYTHONUNBUFFERED-\$PYTHONIOENCODING"), Duration.ofSeconds(10))
        assertEquals("1-utf-8", result.stdout)
    }

    @Test
    fun `stop ends a server with SIGTERM`() {
        val process = BackendProcess.start(listOf("sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done"))
        waitForLine(process, "ready")
        val code = process.stop(Duration.ofSeconds(5))
        assertEquals(0, code)
        assertFalse(process.isAlive)
        assertTrue(process.recentOutput().map { it.text }.contains("bye"))
    }

    @Test
    fun `stop kills what ignores SIGTERM after the grace period`() {
        val process = BackendProcess.start(listOf("sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"))
        waitForLine(process, "ready")
        val started = System.nanoTime()
        process.stop(Duration.ofMillis(300))
        assertFalse(process.isAlive)
        assertTrue(Duration.ofNanos(System.nanoTime() - started) < Duration.ofSeconds(5))
    }

    @Test
    fun `a command past its timeout is stopped`() {
        val result = BackendProcess.run(listOf("sh", "-c", "sleep 30"), Duration.ofMillis(200))
        assertNull(result.exitCode)
    }

    @Test
    fun `only the last lines are kept`() {
        val process = BackendProcess.start(listOf("sh", "-c", "for i in 1 2 3 4 5; do echo \$i; done"), keepLines = 2)
        assertEquals(0, process.waitFor(Duration.ofSeconds(10)))
        assertEquals(listOf("4", "5"), process.recentOutput().map { it.text })
    }

    @Test
    fun `a detached server has its own session and writes to its log, not to a pipe`() {
        // a real Python running a real module through the same wrapper the IDE uses for `serve`
        val dir = temp.newFolder().toPath()
        Files.writeString(dir.resolve("probe.py"), "import os, sys\nprint('own session', os.getsid(0) == os.getpid(), sys.argv[1:])\n")
        val log = dir.resolve("state/server.log")
        Files.createDirectories(log.parent)
        Files.writeString(log, "a line of an earlier server\n")
        val command = BackendCommand.inOwnSession(listOf("python3", "-m", "probe", "--port", "0"), posix = true)
        val process = BackendProcess.startDetached(command, log, workDir = dir, environment = BackendCommand.environment + ("PYTHONPATH" to dir.toString()))
        assertEquals(0, process.waitFor(Duration.ofSeconds(30)))
        assertEquals(listOf("own session True ['--port', '0']"), process.recentOutput().map { it.text })
        assertTrue(Files.readString(log).startsWith("a line of an earlier server"))
    }

    private fun waitForLine(process: BackendProcess, line: String) {
        val deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos()
        while (process.recentOutput().none { it.text == line }) {
            check(System.nanoTime() < deadline) { "no '$line' from the process" }
            Thread.sleep(20)
        }
    }
}
