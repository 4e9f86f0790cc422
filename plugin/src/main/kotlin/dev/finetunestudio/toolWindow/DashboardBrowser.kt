package dev.finetunestudio.toolWindow

import com.intellij.openapi.Disposable
import com.intellij.openapi.diagnostic.Logger
import com.intellij.openapi.util.Disposer
import com.intellij.ui.JBColor
import com.intellij.ui.jcef.JBCefApp
import com.intellij.ui.jcef.JBCefBrowser
import dev.finetunestudio.core.Capture
import dev.finetunestudio.core.StudioClient
import org.cef.browser.CefBrowser
import org.cef.browser.CefFrame
import org.cef.handler.CefLoadHandler
import org.cef.handler.CefLoadHandlerAdapter
import javax.swing.JComponent

/**
 * The backend's dashboard in an embedded Chromium (JCEF). The first load goes through `/?token=`, which
 * sets the session cookie; later views only change `location.hash`, so the page keeps its state.
 */
class DashboardBrowser private constructor(private val browser: JBCefBrowser) {
    val component: JComponent get() = browser.component
    private var loadedFrom: String? = null

    fun open(client: StudioClient, fragment: String?) {
        if (loadedFrom == client.baseUrl) {
            if (fragment != null) {
                // a JS string literal: the same escaping as a Python one, for these ASCII-safe fragments
                browser.cefBrowser.executeJavaScript("location.hash = ${Capture.pythonString(fragment)};", client.baseUrl + "/", 0)
            }
            return
        }
        loadedFrom = client.baseUrl
        browser.loadURL(client.dashboardUrl(fragment, theme()))
    }

    companion object {
        private val LOG = Logger.getInstance(DashboardBrowser::class.java)

        /** The IDE's theme, for the dashboard's `?theme=`. */
        fun theme(): String = if (JBColor.isBright()) "light" else "dark"

        /**
         * A browser owned by [parent], or null where JCEF is unsupported (headless, disabled in the registry,
         * a runtime without JCEF) or fails to start: the caller then shows the native job list.
         */
        fun createOrNull(parent: Disposable, onLoadError: (String) -> Unit = {}): DashboardBrowser? {
            if (!JBCefApp.isSupported()) return null
            return try {
                val browser = JBCefBrowser.createBuilder().build()
                Disposer.register(parent, browser)
                browser.jbCefClient.addLoadHandler(object : CefLoadHandlerAdapter() {
                    override fun onLoadError(cefBrowser: CefBrowser?, frame: CefFrame?, errorCode: CefLoadHandler.ErrorCode?, errorText: String?, failedUrl: String?) {
                        // ERR_ABORTED: a navigation replaced by the next one, not a failure
                        if (frame?.isMain != true || errorCode == CefLoadHandler.ErrorCode.ERR_ABORTED) return
                        LOG.warn("Fine-Tune Studio: the dashboard did not load ($errorCode $errorText); showing the job list instead")
                        onLoadError("$errorCode $errorText")
                    }
                }, browser.cefBrowser)
                DashboardBrowser(browser)
            } catch (e: RuntimeException) {
                // IllegalStateException when JCEF cannot initialise, others from a broken runtime: never the tool window's end
                LOG.warn("Fine-Tune Studio: JCEF could not start; showing the job list instead", e)
                null
            }
        }
    }
}
