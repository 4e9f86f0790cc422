// Gradle build of the PyCharm plugin whose sources live under plugin/ (see build.gradle.kts).
rootProject.name = "finetune-studio-pycharm"

plugins {
    // lets Gradle download the Java 21 toolchain that build.gradle.kts asks for, where none is installed
    id("org.gradle.toolchains.foojay-resolver-convention") version "1.0.0"
}
