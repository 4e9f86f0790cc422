// The Fine-Tune Studio PyCharm plugin, built with the IntelliJ Platform Gradle Plugin 2.x.
// Sources are under plugin/ (the root holds the Python project too). Needs a network that reaches Maven
// Central and JetBrains' repositories; ./gradlew downloads Gradle 8.14.3 (the plugin 2.10 needs >= 8.13):
//   ./gradlew buildPlugin      -> build/distributions/finetune-studio-pycharm-<version>.zip (Install Plugin from Disk)
//   ./gradlew runIde           -> a sandbox PyCharm with the plugin
//   ./gradlew test             -> core JUnit tests + platform tests (BasePlatformTestCase, headless)
//   ./gradlew verifyPlugin     -> JetBrains' Plugin Verifier against the recommended IDEs
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
        // PyDebugValue & co. (module intellij.python.pydev): the Gradle plugin collects a bundled plugin's lib/
        // and lib/modules/ jars (CollectorTransformer.collectJars), so no bundledModule(...) is needed for it
        bundledPlugin("PythonCore")
        // JsonSchemaProviderFactory for finetune.toml (json-schema.xml); JSON is a plugin of its own since 2024.3
        bundledPlugin("com.intellij.modules.json")
        // XDebuggerTreeActionBase/XValueNodeImpl (intellij.platform.debugger.impl) are in the core's lib/*.jar on
        // 251, which the compile classpath holds (product-info.json's boot class path + the com.intellij layout,
        // CollectorTransformer.collectIntelliJPlatformJars); from 2025.3 the split debugger may need
        // bundledModule("intellij.platform.debugger.impl"): re-check when untilBuild is raised.
        testFramework(TestFrameworkType.Platform)
    }
    // Gson: at run time the platform's copy (an embedded library module, loaded by the core class loader) is
    // used, and it must never be bundled (a second Gson gave LinkageErrors, redhat-developer/lsp4ij#988).
    // Which lib/*.jar holds it on 251 was not read in the sources, so compile against it explicitly:
    // compileOnly is neither packaged nor on the runtime classpath. 2.10.1 has every call the plugin makes
    // (JsonParser.parseString/parseReader, @JsonAdapter(nullSafe)), which the platform's newer copy keeps.
    compileOnly("com.google.code.gson:gson:2.10.1")
    testImplementation("junit:junit:4.13.2")
}

intellijPlatform {
    pluginConfiguration {
        id = "dev.finetunestudio"
        name = "Fine-Tune Studio"
        version = project.version.toString()
        ideaVersion {
            sinceBuild = "251"
            // the newest branch the glue was read against; plugin/README.md lists what to re-check before raising it
            untilBuild = "251.*"
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
