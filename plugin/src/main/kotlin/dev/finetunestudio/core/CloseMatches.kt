package dev.finetunestudio.core

/**
 * Python's `difflib.get_close_matches(word, possibilities, n=1, cutoff=0.6)`, which spec.py's
 * `_did_you_mean` uses, so that the editor suggests the same key as the server. The ratio is
 * `SequenceMatcher(None, possibility, word).ratio()`: 2·M / (|a| + |b|), M the characters of the
 * matching blocks found by longest-match recursion. Keys are short, so difflib's junk and "popular
 * element" heuristics (only for sequences of 200 or more) never apply and are left out.
 */
object CloseMatches {
    /** The best possibility whose ratio is at least [cutoff]; on a tie, the greatest string, as `heapq.nlargest` picks it. */
    fun closest(word: String, possibilities: Collection<String>, cutoff: Double = 0.6): String? =
        possibilities
            .map { ratio(it, word) to it }
            .filter { it.first >= cutoff }
            .maxWithOrNull(compareBy<Pair<Double, String>> { it.first }.thenBy { it.second })
            ?.second

    fun ratio(a: String, b: String): Double {
        val total = a.length + b.length
        return if (total == 0) 1.0 else 2.0 * matches(a, 0, a.length, b, 0, b.length) / total
    }

    /** The characters in matching blocks: the longest match, then the same on both sides of it. */
    private fun matches(a: String, alo: Int, ahi: Int, b: String, blo: Int, bhi: Int): Int {
        if (alo >= ahi || blo >= bhi) return 0
        val (i, j, size) = longestMatch(a, alo, ahi, b, blo, bhi)
        if (size == 0) return 0
        return size + matches(a, alo, i, b, blo, j) + matches(a, i + size, ahi, b, j + size, bhi)
    }

    /** difflib's find_longest_match: the longest block, earliest in a, then earliest in b. */
    private fun longestMatch(a: String, alo: Int, ahi: Int, b: String, blo: Int, bhi: Int): Triple<Int, Int, Int> {
        var bestI = alo
        var bestJ = blo
        var bestSize = 0
        var lengths = IntArray(bhi - blo + 1) // lengths[j - blo + 1]: the match ending at a[i-1], b[j]
        for (i in alo until ahi) {
            val next = IntArray(bhi - blo + 1)
            for (j in blo until bhi) {
                if (a[i] != b[j]) continue
                val k = lengths[j - blo] + 1
                next[j - blo + 1] = k
                if (k > bestSize) {
                    bestI = i - k + 1
                    bestJ = j - k + 1
                    bestSize = k
                }
            }
            lengths = next
        }
        return Triple(bestI, bestJ, bestSize)
    }
}
