package dev.finetunestudio.core

import com.sun.net.httpserver.HttpExchange
import com.sun.net.httpserver.HttpServer
import java.net.InetAddress
import java.net.InetSocketAddress
import java.nio.charset.StandardCharsets
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.Executors

/**
 * A real HTTP server on a free loopback port (JDK's com.sun.net.httpserver) whose routes the tests write
 * by hand: the client under test talks real HTTP, including endless SSE bodies that a test cuts off.
 */
class FakeServer : AutoCloseable {
    /** One request as the server saw it. */
    data class Seen(val method: String, val path: String, val query: String?, val headers: Map<String, String?>, val body: String)

    val requests = CopyOnWriteArrayList<Seen>()
    private val server: HttpServer = HttpServer.create(InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0)

    init {
        // one thread per exchange: SSE handlers block for as long as their stream is open
        server.executor = Executors.newCachedThreadPool { r -> Thread(r, "fake-server").apply { isDaemon = true } }
        server.start()
    }

    val url: String get() = "http://127.0.0.1:${server.address.port}"

    /** Serves [path] (and anything below it) with [handler], after recording the request. */
    fun route(path: String, handler: (HttpExchange, Seen) -> Unit) {
        server.createContext(path) { exchange ->
            val body = exchange.requestBody.readAllBytes().toString(StandardCharsets.UTF_8)
            val headers = listOf("Authorization", "Last-Event-ID", "Accept", "Content-Type")
                .associateWith { exchange.requestHeaders.getFirst(it) }
            val seen = Seen(exchange.requestMethod, exchange.requestURI.path, exchange.requestURI.rawQuery, headers, body)
            requests += seen
            try {
                handler(exchange, seen)
            } finally {
                exchange.close()
            }
        }
    }

    override fun close() = server.stop(0)

    companion object {
        fun json(exchange: HttpExchange, status: Int, body: String) {
            val bytes = body.toByteArray(StandardCharsets.UTF_8)
            exchange.responseHeaders.add("Content-Type", "application/json")
            exchange.sendResponseHeaders(status, if (bytes.isEmpty()) -1 else bytes.size.toLong())
            if (bytes.isNotEmpty()) exchange.responseBody.write(bytes)
        }

        /** Starts an SSE body; write with [sse]. */
        fun startSse(exchange: HttpExchange) {
            exchange.responseHeaders.add("Content-Type", "text/event-stream")
            exchange.sendResponseHeaders(200, 0) // 0 = chunked: a body of unknown length
        }

        fun sse(exchange: HttpExchange, text: String) {
            exchange.responseBody.write(text.toByteArray(StandardCharsets.UTF_8))
            exchange.responseBody.flush()
        }
    }
}
