package dev.finetunestudio.core

import org.junit.Assert.assertEquals
import org.junit.Test

/** "Clone as new job" from the IDE (issue 16): the form's route, and whether the working tree still matches. */
class WorktreeCheckTest {
    @Test
    fun `the worktree check is asked of the server and read`() {
        FakeServer().use { server ->
            server.route("/api/jobs/") { exchange, _ ->
                FakeServer.json(exchange, 200, """{"job_id":"j 1","matches":false,"commit_then":"abc","commit_now":"abc",
                    "changed_files":[{"path":"prepare.py","diff":"-a\n+b\n"}],
                    "data_changed":[{"field":"data.train","a":{"field":"data.train","path":"/d/train.csv","size":1,"mtime":1.0,"rows":2,"sha256":"ff"},
                    "b":null,"note":"/d/train.csv is gone"}],"note":null}""")
            }
            val check = StudioClient(server.url, "t").worktree("j 1")
            assertEquals(listOf("GET /api/jobs/j 1/lineage/worktree"), server.requests.map { "${it.method} ${it.path}" })
            assertEquals(
                "The working tree differs from the run's lineage; files changed since: prepare.py; data changed: data.train (/d/train.csv)",
                check.summary(),
            )
        }
    }

    @Test
    fun `the summary says matches, differs by commit, or cannot tell and why`() {
        assertEquals("The working tree matches the run's lineage", WorktreeCheck(matches = true, commitThen = "c", commitNow = "c").summary())
        assertEquals(
            "The working tree differs from the run's lineage; commit 0123456789 then, fedcba9876 now; the files are the run's, at another commit",
            WorktreeCheck(matches = false, commitThen = "0123456789ab", commitNow = "fedcba9876ab", note = "the files are the run's, at another commit").summary(),
        )
        assertEquals(
            "Cannot tell whether the working tree matches the run's lineage; /p was not a git repository when the run started",
            WorktreeCheck(matches = null, note = "/p was not a git repository when the run started").summary(),
        )
        assertEquals("new=j%201", DashboardRoute.cloneJob("j 1"))
    }
}
