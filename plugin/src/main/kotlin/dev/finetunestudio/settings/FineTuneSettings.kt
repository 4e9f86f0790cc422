package dev.finetunestudio.settings

import com.intellij.openapi.components.BaseState
import com.intellij.openapi.components.Service
import com.intellij.openapi.components.SimplePersistentStateComponent
import com.intellij.openapi.components.State
import com.intellij.openapi.components.Storage
import com.intellij.openapi.components.StoragePathMacros
import com.intellij.openapi.components.service
import com.intellij.openapi.project.Project

/**
 * The project's Fine-Tune Studio settings (Settings | Tools | Fine-Tune Studio). Kept in the workspace file:
 * an interpreter path and a state folder are this machine's, not the team's.
 */
@Service(Service.Level.PROJECT)
@State(name = "FineTuneStudioSettings", storages = [Storage(StoragePathMacros.WORKSPACE_FILE)])
class FineTuneSettings : SimplePersistentStateComponent<FineTuneSettings.Options>(Options()) {
    class Options : BaseState() {
        /** A Python interpreter to run the backend with instead of the project's; blank = the project's. */
        var interpreter by string()
        /** The state folder instead of `<project>/.finetune-studio`; relative paths resolve against the project. */
        var stateDir by string()
        /** Start the backend when the Training tool window or a run needs it, without asking. */
        var autoStart by property(true)
        /** 0 = any free port. */
        var port by property(0)
    }

    companion object {
        fun getInstance(project: Project): FineTuneSettings = project.service()
    }
}
