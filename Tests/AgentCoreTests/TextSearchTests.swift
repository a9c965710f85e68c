import Testing
import TextSearch

/// The substring search the agent's modules use instead of _StringProcessing's.
@Suite struct TextSearchTests {
    @Test func includesFindsSubstringsAnywhereAndComparesCharacters() {
        #expect("certificate verify failed".includes("verify"))
        #expect("certificate verify failed".includes("certificate"))
        #expect("certificate verify failed".includes("failed"))
        #expect(!"certificate verify failed".includes("verified"))
        #expect("abc".includes(""))
        #expect(!"".includes("a"))
        #expect("aaab".includes("aab"), "a partial match is retried from the next character")
        #expect("caf\u{E9}".includes("cafe\u{301}"), "canonically equivalent characters match, as String's == does")
    }

    @Test func firstRangeIsTheFirstOccurrence() throws {
        let line = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES"
        let range = try #require(line.firstRange(ofText: "crc="))
        #expect(line[range.upperBound...] == "57 YES")
        #expect("t=1 t=2".firstRange(ofText: "t=").map { "t=1 t=2".distance(from: "t=1 t=2".startIndex, to: $0.lowerBound) } == 0)
        #expect("abc".firstRange(ofText: "x") == nil)
    }

    @Test func replacingTextReplacesEveryOccurrenceLeftToRight() {
        #expect("/tmp/a: /tmp/a is missing".replacingText("/tmp/a", with: "config.toml") == "config.toml: config.toml is missing")
        #expect("aaa".replacingText("aa", with: "b") == "ba")
        #expect("abc".replacingText("", with: "x") == "abc")
        #expect("abc".replacingText("z", with: "x") == "abc")
    }
}
