package dev.finetunestudio.schema

import com.intellij.openapi.Disposable
import com.intellij.openapi.application.EDT
import com.intellij.openapi.application.runReadAction
import com.intellij.openapi.components.Service
import com.intellij.openapi.components.service
import com.intellij.openapi.diagnostic.Logger
import com.intellij.openapi.editor.EditorFactory
import com.intellij.openapi.editor.event.DocumentEvent
import com.intellij.openapi.editor.event.DocumentListener
import com.intellij.openapi.fileEditor.FileDocumentManager
import com.intellij.openapi.project.Project
import com.intellij.openapi.vfs.VirtualFile
import com.intellij.psi.PsiManager
import com.intellij.ui.EditorNotifications
import dev.finetunestudio.backend.BackendService
import dev.finetunestudio.core.Estimate
import dev.finetunestudio.core.JobConfigFiles
import dev.finetunestudio.core.SpecJson
import dev.finetunestudio.core.StudioApiException
import dev.finetunestudio.settings.FineTuneSettings
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runInterruptible
import kotlinx.coroutines.withContext
import java.io.IOException
import java.nio.file.Path
import java.util.concurrent.ConcurrentHashMap

/**
 * The latest `POST /api/estimate` answer of each open `finetune.toml`, for [EstimateNotificationProvider]'s
 * banner. Asked again [DEBOUNCE_MS] after the last edit (the editor's text, not the saved file: the spec is
 * built from the TOML PSI with paths resolved against the file's folder), then the banner is redrawn. No
 * answer (backend not running and not to be started, a spec the server refuses, an older server without
 * the endpoint) means no banner: the annotator already names what is wrong with the file.
 */
@Service(Service.Level.PROJECT)
class SpecEstimates(private val project: Project, private val scope: CoroutineScope) : Disposable {
    private val answers = ConcurrentHashMap<String, Estimate>()
    private val pending = ConcurrentHashMap<String, Job>()
    @Volatile private var listening = false

    /** The estimate to show for [file], or null; the first call for a file asks the server. */
    fun current(file: VirtualFile): Estimate? {
        listen()
        answers[file.path]?.let { return it }
        if (file.path !in pending) refresh(file, delayMs = 0)
        return null
    }

    fun refresh(file: VirtualFile, delayMs: Long = DEBOUNCE_MS) {
        val path = file.path
        val job = scope.launch {
            delay(delayMs)
            val answer = ask(file)
            if (answer == null) answers.remove(path) else answers[path] = answer
            withContext(Dispatchers.EDT) { EditorNotifications.getInstance(project).updateNotifications(file) }
        }
        pending.put(path, job)?.cancel()
        job.invokeOnCompletion { pending.remove(path, job) }
    }

    private suspend fun ask(file: VirtualFile): Estimate? {
        val folder = file.parent?.path ?: return null
        val spec = withContext(Dispatchers.IO) {
            runReadAction {
                val psi = PsiManager.getInstance(project).findFile(file) ?: return@runReadAction null
                SpecJson.of(TomlSpecEntries.entries(psi), Path.of(folder))
            }
        } ?: return null
        val backend = BackendService.getInstance(project)
        val client = try {
            backend.clientIfRunning() ?: if (FineTuneSettings.getInstance(project).state.autoStart) backend.client() else return null
        } catch (e: IOException) {
            return null // the backend's failure is notified by the service
        }
        return try {
            runInterruptible(Dispatchers.IO) { client.estimate(spec) }
        } catch (e: StudioApiException) {
            LOG.info("Fine-Tune Studio: no estimate for ${file.path}: ${e.message}")
            null
        } catch (e: IOException) {
            LOG.info("Fine-Tune Studio: no estimate for ${file.path}: ${e.message}")
            null
        }
    }

    /** Edits of any job config re-ask (debounced); registered once, removed with the project. */
    private fun listen() {
        if (listening) return
        synchronized(this) {
            if (listening) return
            listening = true
            EditorFactory.getInstance().eventMulticaster.addDocumentListener(object : DocumentListener {
                override fun documentChanged(event: DocumentEvent) {
                    val file = FileDocumentManager.getInstance().getFile(event.document) ?: return
                    if (JobConfigFiles.isJobConfig(file.name) && file.path in answers.keys + pending.keys) refresh(file)
                }
            }, this)
        }
    }

    override fun dispose() = Unit

    companion object {
        private val LOG = Logger.getInstance(SpecEstimates::class.java)
        const val DEBOUNCE_MS = 800L

        fun getInstance(project: Project): SpecEstimates = project.service()
    }
}
