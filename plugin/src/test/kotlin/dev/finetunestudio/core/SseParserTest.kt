package dev.finetunestudio.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Test

class SseParserTest {
    private fun parse(text: String): Pair<List<SseEvent>, SseParser> {
        val parser = SseParser()
        // BufferedReader.readLine splits on \n, \r\n and \r, as the SSE spec asks
        val events = text.reader().buffered().lineSequence().mapNotNull(parser::feed).toList()
        return events to parser
    }

    @Test
    fun `joins multi-line data with newlines`() {
        val (events, _) = parse("event: log\ndata: first\ndata: second\ndata:\ndata:  indented\n\n")
        assertEquals(listOf(SseEvent(null, "log", "first\nsecond\n\n indented")), events)
    }

    @Test
    fun `ignores heartbeat comments between and inside events`() {
        val (events, _) = parse(": ping\n\nid: 1\n: keep-alive\ndata: {\"a\":1}\n\n:\n\n")
        assertEquals(listOf(SseEvent("1", "message", "{\"a\":1}")), events)
    }

    @Test
    fun `id persists across events and an event without data is not dispatched`() {
        val (events, parser) = parse("id: 7\nevent: metric\ndata: x\n\nevent: lonely\n\ndata: y\n\n")
        assertEquals(listOf(SseEvent("7", "metric", "x"), SseEvent("7", "message", "y")), events)
        assertEquals("7", parser.lastEventId)
    }

    @Test
    fun `handles CRLF and CR line ends and a field without colon`() {
        val (events, _) = parse("id: 2\r\ndata: a\r\r\ndata\r\n\r\n")
        assertEquals(listOf(SseEvent("2", "message", "a"), SseEvent("2", "message", "")), events)
    }

    @Test
    fun `reads retry and ignores unknown fields and ids with NUL`() {
        val (events, parser) = parse("retry: 1500\nfoo: bar\nid: 5\nid: bad\u0000id\ndata: z\n\nretry: soon\n\n")
        assertEquals(listOf(SseEvent("5", "message", "z")), events)
        assertEquals(1500L, parser.retryMillis)
    }

    @Test
    fun `only one leading space of a value is dropped and colons in data stay`() {
        val (events, _) = parse("data:no space\ndata: {\"url\": \"http://x:1\"}\n\n")
        assertEquals("no space\n{\"url\": \"http://x:1\"}", events.single().data)
    }

    @Test
    fun `resetEvent forgets a half-received event and its id`() {
        val parser = SseParser()
        parser.feed("id: 3")
        parser.feed("data: complete")
        parser.feed("")
        parser.feed("id: 4")
        parser.feed("data: cut off by a drop")
        parser.resetEvent()
        assertNull(parser.feed(""))
        assertEquals("3", parser.lastEventId)
    }
}
