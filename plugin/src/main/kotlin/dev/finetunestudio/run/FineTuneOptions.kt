package dev.finetunestudio.run

import com.intellij.execution.configurations.RunConfigurationOptions

/**
 * What a Fine-tune run configuration stores: the config file and the hyper-parameters it overrides. The
 * overrides stay text (blank = keep the file's value); `SpecOverrides` validates them.
 */
class FineTuneOptions : RunConfigurationOptions() {
    var configPath by string()
    var epochs by string()
    var batchSize by string()
    var learningRate by string()
    var maxSteps by string()
}
