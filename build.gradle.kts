// The Fine-Tune Studio PyCharm plugin, built with the IntelliJ Platform Gradle Plugin 2.x.
// Sources are under plugin/ (the root holds the Python project too). Needs Gradle >= 8.13 and a network
// that reaches Maven Central and JetBrains' repositories:
//   gradle buildPlugin      -> build/distributions/finetune-studio-pycharm-<version>.zip (Install Plugin from Disk)
//   gradle runIde           -> a sandbox PyCharm with the plugin
//   gradle test             -> core JUnit tests + platform tests (BasePlatformTestCase, headless)
//   gradle verifyPlugin     -> JetBrains' Plugin Verifier against the recommended IDEs
// Without Gradle, plugin/scripts/test-core.sh compiles and tests the platform-free core with kotlinc.
import org.jetbrains.intellij.platform.gradle.TestFrameworkType
import org.jetbrains.kotlin.gradle.dsl.KotlinVersion

plugins {
    id("java")
    id("org.jetbrains.kotlin.jvm") version "2.2.21"
    id("org.jetbrains.intellij.platform") version "2.10.5"
}

group = "dev.finetunestudio"
version = "0.1.0"

kotlin {
    jvmToolchain(21)
    compilerOptions {
        // PyCharm 2025.1 ships Kotlin stdlib 2.1.10: calls into a newer stdlib would fail at run time there
        apiVersion.set(KotlinVersion.KOTLIN_2_1)
        languageVersion.set(KotlinVersion.KOTLIN_2_1)
    }
}

// the plugin's sources live under plugin/ (the repository root is the Python project's)
kotlin {
    sourceSets["main"].kotlin.srcDir("plugin/src/main/kotlin")
    sourceSets["test"].kotlin.srcDir("plugin/src/test/kotlin")
}
sourceSets["main"].resources.srcDir("plugin/src/main/resources")

repositories {
    mavenCentral()
    intellijPlatform {
        defaultRepositories()
    }
}

dependencies {
    intellijPlatform {
        // the last standalone PyCharm Community line; for 2025.3+ use pycharm("2025.3") (the unified PyCharm)
        pycharmCommunity("2025.1.6.1")
        bundledPlugin("PythonCore")
        testFramework(TestFrameworkType.Platform)
    }
    // Gson comes from the platform (an embedded library module): never bundle it (LinkageErrors).
    // If it does not resolve at compile time, add: compileOnly("com.google.code.gson:gson:2.11.0")
    testImplementation("junit:junit:4.13.2")
}

intellijPlatform {
    pluginConfiguration {
        id = "dev.finetunestudio"
        name = "Fine-Tune Studio"
        version = project.version.toString()
        ideaVersion {
            sinceBuild = "251"
            // no upper bound: the default would be "251.*" and the plugin would not load in the next release
            untilBuild = provider { null }
        }
    }
    buildSearchableOptions = false
    pluginVerification {
        ides {
            recommended()
        }
    }
}

tasks {
    test {
        // the wire contract fixtures that tests/test_wire.py writes
        systemProperty("finetunestudio.wireFixtures", layout.projectDirectory.dir("tests/fixtures/wire").asFile.absolutePath)
    }
}
