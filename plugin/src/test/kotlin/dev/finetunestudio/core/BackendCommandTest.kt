package dev.finetunestudio.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.nio.file.Files
import java.nio.file.Path

class BackendCommandTest {
    @get:Rule
    val temp = TemporaryFolder()

    @Test
    fun `serve runs the module with the data dir and port`() {
        assertEquals(
            listOf("/venv/bin/python", "-m", "finetune_studio", "serve", "--data-dir", "/p/.finetune-studio", "--port", "0"),
            BackendCommand.serve("/venv/bin/python", Path.of("/p/.finetune-studio")),
        )
        assertEquals("8765", BackendCommand.serve("python", Path.of("d"), 8765).last())
    }

    @Test
    fun `a server command runs in its own session on POSIX and unchanged on Windows`() {
        val serve = BackendCommand.serve("/venv/bin/python", Path.of("/p/.finetune-studio"))
        val own = BackendCommand.inOwnSession(serve, posix = true)
        assertEquals(listOf("/venv/bin/python", "-c"), own.take(2))
        assertTrue(own[2].contains("os.setsid()"))
        assertEquals(serve.drop(2), own.drop(3))
        assertEquals(serve, BackendCommand.inOwnSession(serve, posix = false))
    }

    @Test(expected = IllegalArgumentException::class)
    fun `an impossible port is refused`() {
        BackendCommand.serve("python", Path.of("d"), 70000)
    }

    @Test
    fun `helper commands use the same interpreter`() {
        assertEquals(listOf("py", "-m", "pip", "install", "finetune-studio"), BackendCommand.pipInstall("py"))
        assertEquals(listOf("py", "-c"), BackendCommand.versionCheck("py").take(2))
        val load = BackendCommand.loadSpec("py", Path.of("/w/finetune.toml"))
        assertEquals("/w/finetune.toml", load.last())
        assertTrue(load[2].contains("load_spec(Path(sys.argv[1]))"))
        assertEquals("1", BackendCommand.environment["PYTHONUNBUFFERED"])
    }

    @Test
    fun `recognises a missing package in stderr`() {
        assertTrue(BackendCommand.isMissingPackage("ModuleNotFoundError: No module named 'finetune_studio'"))
        assertTrue(BackendCommand.isMissingPackage("No module named 'finetune_studio.debug'"))
        assertFalse(BackendCommand.isMissingPackage("ModuleNotFoundError: No module named 'torch'"))
    }

    @Test
    fun `the interpreter set in the settings wins over the project's`() {
        val python = executable("python3")
        val other = executable("other-python")
        assertEquals(InterpreterChoice.Found(python.toString(), "settings"), InterpreterChoice.choose(" $python ", listOf(other.toString())))
        assertEquals(InterpreterChoice.Found(other.toString(), "project interpreter"), InterpreterChoice.choose(null, listOf(other.toString())))
        val missing = InterpreterChoice.choose("/nowhere/python", listOf(other.toString())) as InterpreterChoice.Missing
        assertTrue(missing.reason.contains("/nowhere/python"))
    }

    @Test
    fun `remote interpreters are skipped and named`() {
        val local = executable("python")
        assertEquals(
            InterpreterChoice.Found(local.toString(), "project interpreter"),
            InterpreterChoice.choose(null, listOf("docker://pytorch:latest/python", local.toString())),
        )
        val remote = InterpreterChoice.choose(null, listOf("ssh://gpu-box/usr/bin/python3")) as InterpreterChoice.Missing
        assertTrue(remote.reason.contains("not a local one"))
        assertTrue((InterpreterChoice.choose("", emptyList()) as InterpreterChoice.Missing).reason.contains("no Python interpreter"))
    }

    private fun executable(name: String): Path {
        val file = temp.newFile(name).toPath()
        Files.writeString(file, "#!/bin/sh\n")
        file.toFile().setExecutable(true)
        return file
    }
}
