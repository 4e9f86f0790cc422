package dev.finetunestudio.platform

import com.intellij.testFramework.PlatformTestUtil
import com.intellij.testFramework.fixtures.BasePlatformTestCase
import dev.finetunestudio.backend.BackendService
import dev.finetunestudio.core.Job
import dev.finetunestudio.core.JobState
import dev.finetunestudio.core.Progress
import dev.finetunestudio.settings.FineTuneSettings
import dev.finetunestudio.toolWindow.DashboardBrowser
import dev.finetunestudio.toolWindow.JobListPanel
import dev.finetunestudio.toolWindow.TrainingPanel
import dev.finetunestudio.toolWindow.TrainingWindow

/** Tests are headless, where JCEF is unsupported: exactly the case of the native fallback. */
class TrainingToolWindowTest : BasePlatformTestCase() {
    fun testNoBrowserWhereJcefIsUnsupported() {
        assertNull(DashboardBrowser.createOrNull(testRootDisposable))
    }

    /**
     * A real transition: stopped, then Start, then (no Python interpreter in the test project) failed with
     * the reason and a Restart button. The panel starts in no particular mode of its own: "stopped" comes
     * from the backend's state flow.
     */
    fun testPanelFollowsTheBackendFromStoppedToFailed() {
        FineTuneSettings.getInstance(project).state.autoStart = false
        val panel = TrainingPanel(project, TrainingWindow.getInstance(project).scope, testRootDisposable, useBrowser = false)
        waitForMode(panel, "stopped")
        BackendService.getInstance(project).start()
        waitForMode(panel, "failed")
    }

    private fun waitForMode(panel: TrainingPanel, expected: String) {
        val deadline = System.nanoTime() + 20_000_000_000L
        while (panel.mode != expected) {
            assertTrue("mode stayed ${panel.mode}, expected $expected", System.nanoTime() < deadline)
            PlatformTestUtil.dispatchAllEventsInIdeEventQueue()
            Thread.sleep(20)
        }
    }

    fun testJobListShowsStateAndProgress() {
        val list = JobListPanel { null }
        list.update(
            listOf(
                Job(id = "j1", name = "reviews", task = "text-classification", state = JobState.RUNNING,
                    progress = Progress(step = 50, maxSteps = 200), device = "cuda:0"),
                Job(id = "j2", name = "ner", task = "token-classification", state = JobState.QUEUED),
            ),
        )
        assertEquals(2, list.model.rowCount)
        assertEquals("reviews", list.model.getValueAt(0, 0))
        assertEquals(JobState.RUNNING, list.model.getValueAt(0, 2))
        assertEquals("25%  (50/200)", list.model.getValueAt(0, 3))
        assertEquals("cuda:0", list.model.getValueAt(0, 4))
        assertEquals("—", list.model.getValueAt(1, 3))
    }
}
