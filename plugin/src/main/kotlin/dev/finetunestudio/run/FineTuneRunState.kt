package dev.finetunestudio.run

import com.intellij.execution.configurations.CommandLineState
import com.intellij.execution.process.ProcessHandler
import com.intellij.execution.runners.ExecutionEnvironment
import java.nio.file.Path

/** CommandLineState builds the console and attaches it; the "process" is the job, see [JobProcessHandler]. */
class FineTuneRunState(environment: ExecutionEnvironment, private val configuration: FineTuneRunConfiguration) :
    CommandLineState(environment) {

    override fun startProcess(): ProcessHandler =
        JobProcessHandler(configuration.project, Path.of(configuration.configPath), configuration.overrides)
}
