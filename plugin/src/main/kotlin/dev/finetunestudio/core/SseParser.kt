package dev.finetunestudio.core

/** One Server-Sent Event. [id] is the stream's last event id at this event (SSE keeps it across events). */
data class SseEvent(val id: String?, val event: String, val data: String)

/**
 * Turns the lines of a `text/event-stream` into events, per the WHATWG rules that matter here:
 * `data:` lines join with "\n"; one space after the colon is dropped; lines starting with ':' are comments
 * (the server's heartbeats); a blank line dispatches; an event without data is not dispatched; the id
 * persists until changed; `retry:` sets the reconnection delay. Feed it lines without their terminator.
 */
class SseParser {
    var lastEventId: String? = null
        private set

    /** The reconnection delay the server asked for, in milliseconds. */
    var retryMillis: Long? = null
        private set

    private var idBuffer: String? = null
    private var eventType = ""
    private val data = StringBuilder()
    private var hasData = false

    /** Feeds one line; returns the event that a blank line completes, else null. */
    fun feed(line: String): SseEvent? {
        if (line.isEmpty()) return dispatch()
        if (line.startsWith(":")) return null
        val colon = line.indexOf(':')
        val field = if (colon < 0) line else line.substring(0, colon)
        var value = if (colon < 0) "" else line.substring(colon + 1)
        if (value.startsWith(" ")) value = value.substring(1)
        when (field) {
            "event" -> eventType = value
            "data" -> {
                if (hasData) data.append('\n')
                data.append(value)
                hasData = true
            }
            // an id with NUL is ignored by the spec, as are unknown fields
            "id" -> if ('\u0000' !in value) idBuffer = value
            "retry" -> value.toLongOrNull()?.let { if (it >= 0) retryMillis = it }
        }
        return null
    }

    /** Forgets a half-received event, as a dropped connection must, its id included. */
    fun resetEvent() {
        idBuffer = lastEventId
        clearEvent()
    }

    private fun clearEvent() {
        eventType = ""
        data.setLength(0)
        hasData = false
    }

    private fun dispatch(): SseEvent? {
        lastEventId = idBuffer
        if (!hasData) {
            clearEvent()
            return null
        }
        val event = SseEvent(lastEventId, eventType.ifEmpty { "message" }, data.toString())
        clearEvent()
        return event
    }
}
