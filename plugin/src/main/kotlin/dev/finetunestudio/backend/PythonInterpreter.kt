package dev.finetunestudio.backend

import com.intellij.openapi.application.runReadAction
import com.intellij.openapi.module.ModuleManager
import com.intellij.openapi.project.Project
import com.intellij.openapi.projectRoots.Sdk
import com.intellij.openapi.roots.ModuleRootManager
import com.intellij.openapi.roots.ProjectRootManager
import dev.finetunestudio.core.InterpreterChoice
import dev.finetunestudio.settings.FineTuneSettings

/**
 * The Python interpreter that runs the backend: the one set in the settings, else the project's Python SDK,
 * else a module's. Platform API only (no Python-plugin classes), so it also works in IDEs where the
 * Python plugin is optional. Call off the EDT: SDK tables may still be loading at startup.
 */
object PythonInterpreter {
    /** `PyNames.PYTHON_SDK_ID_NAME`; for a Python SDK, `homePath` is the interpreter binary. */
    private const val PYTHON_SDK_TYPE = "Python SDK"

    fun choose(project: Project): InterpreterChoice {
        val configured = FineTuneSettings.getInstance(project).state.interpreter
        return InterpreterChoice.choose(configured, pythonSdkHomes(project))
    }

    private fun pythonSdkHomes(project: Project): List<String> = runReadAction {
        val projectSdk = listOfNotNull(ProjectRootManager.getInstance(project).projectSdk)
        val moduleSdks = ModuleManager.getInstance(project).modules.mapNotNull { ModuleRootManager.getInstance(it).sdk }
        (projectSdk + moduleSdks).filter(::isPython).mapNotNull { it.homePath }.distinct()
    }

    private fun isPython(sdk: Sdk): Boolean = sdk.sdkType.name == PYTHON_SDK_TYPE
}
