import AgentCore
import TBChecksum
import TBJSON
import Testing

@Suite("OTA download state machine")
struct OTADownloadTests {
    /// 100 bytes: chunks of 32 are 32, 32, 32 and 4.
    static let data: [UInt8] = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }

    static func settings(chunk: Int = 32, syncEvery: Int = 64) -> OTADownload.Settings {
        var s = OTADownload.Settings(title: "tb-agent", version: "1.0", chunkSize: chunk)
        s.syncEvery = syncEvery
        s.chunkTimeout = .seconds(10)
        s.maxAttempts = 3
        return s
    }

    static func attributes(_ algorithm: ChecksumAlgorithm = .sha256, checksum: String? = nil, version: String = "2.0",
                           title: String = "tb-agent", size: Int = 100) -> JSONValue {
        .object([("shared", .object([
            ("fw_title", .string(title)), ("fw_version", .string(version)), ("fw_size", .integer(Int64(size))),
            ("fw_checksum_algorithm", .string(algorithm.rawValue)),
            ("fw_checksum", .string(checksum ?? algorithm.hex(of: data))),
        ]))])
    }

    static func requests(_ actions: [OTADownload.Action]) -> [String] {
        actions.compactMap { if case .request(let topic, _) = $0 { return topic } else { return nil } }
    }

    static func states(_ actions: [OTADownload.Action]) -> [String] {
        actions.compactMap { if case .report(let json) = $0 { return json["fw_state"]?.stringValue } else { return nil } }
    }

    static func error(_ actions: [OTADownload.Action]) -> String? {
        actions.lazy.compactMap { if case .report(let json) = $0 { return json["fw_error"]?.stringValue } else { return nil } }.first
    }

    /// Answers every request with the right bytes until none is left; returns all actions.
    static func serve(_ machine: inout OTADownload, _ first: [OTADownload.Action], bytes: [UInt8] = data, chunk: Int = 32,
                      stopAfter: Int = .max) -> [OTADownload.Action] {
        var all = first
        var next = first
        var served = 0
        while let topic = requests(next).last, served < stopAfter {
            machine.requestSent(now: .seconds(1))
            let index = Int(topic.split(separator: "/").last!)!
            let id = topic.split(separator: "/")[3]
            let start = min(index * chunk, bytes.count)
            let payload = Array(bytes[start..<min(start + chunk, bytes.count)])
            next = machine.chunk(topic: "v2/fw/response/\(id)/chunk/\(index)", payload: payload, now: .seconds(1))
            all += next
            served += 1
        }
        return all
    }

    /// Connected, the package assigned, chunk 0 asked for at 0 s (request id 2).
    static func awaitingFirstChunk() -> OTADownload {
        var machine = OTADownload(settings: Self.settings())
        _ = machine.connected(now: .zero)
        _ = machine.attributes(Self.attributes(), now: .zero)
        machine.requestSent(now: .zero)
        return machine
    }

    @Test("all seven algorithms: a whole download goes DOWNLOADING, DOWNLOADED, VERIFIED with the bytes appended in order", arguments: ChecksumAlgorithm.allCases)
    func verifiesEveryAlgorithm(_ algorithm: ChecksumAlgorithm) {
        var machine = OTADownload(settings: Self.settings())
        let connect = machine.connected(now: .zero)
        #expect(connect.contains(.report(.object([("current_fw_title", .string("tb-agent")), ("current_fw_version", .string("1.0"))]))))
        let start = machine.attributes(Self.attributes(algorithm), now: .zero)
        #expect(start.contains { if case .begin = $0 { return true } else { return false } })
        #expect(Self.requests(start) == ["v2/fw/request/2/chunk/0"])
        let all = Self.serve(&machine, start)
        let appended = all.flatMap { if case .append(let b) = $0 { return b } else { return [] } }
        #expect(appended == Self.data)
        #expect(Self.states(all).first == "DOWNLOADING")
        #expect(Array(Self.states(all).suffix(2)) == ["DOWNLOADED", "VERIFIED"])
        #expect(all.contains(.markVerified))
        #expect(all.contains(.sync(durableBytes: 100)))
        #expect(machine.phase == .verified(OTAPackage(title: "tb-agent", version: "2.0", size: 100, algorithm: algorithm, checksum: algorithm.hex(of: Self.data))))
    }

    @Test("checksum mismatch: FAILED with an fw_error naming both checksums and what to do; the partial file is discarded")
    func checksumMismatch() {
        var machine = OTADownload(settings: Self.settings())
        _ = machine.connected(now: .zero)
        let wrong = String(repeating: "ab", count: 32)
        let all = Self.serve(&machine, machine.attributes(Self.attributes(checksum: wrong), now: .zero))
        #expect(Array(Self.states(all).suffix(2)) == ["DOWNLOADED", "FAILED"])
        let error = Self.error(all) ?? ""
        #expect(error.hasPrefix("checksum mismatch"))
        #expect(error.utf8.count > 0 && all.contains(.discard))
        guard case .failed = machine.phase else { Issue.record("not failed: \(machine.phase)"); return }
        // The same package again (a reconnect's attributes) is not downloaded again in this process.
        _ = machine.disconnected()
        _ = machine.connected(now: .seconds(5))
        #expect(Self.requests(machine.attributes(Self.attributes(checksum: wrong), now: .seconds(5))).isEmpty)
    }

    @Test("a disconnect: the next session uses a new request id and asks for the next missing chunk, never 0")
    func resumeAfterDisconnect() {
        var machine = OTADownload(settings: Self.settings())
        _ = machine.connected(now: .zero)
        let partial = Self.serve(&machine, machine.attributes(Self.attributes(), now: .zero), stopAfter: 3)
        #expect(partial.contains(.sync(durableBytes: 64)))  // 96 received, 64 durable
        machine.disconnected()
        _ = machine.connected(now: .seconds(2))
        let resumed = machine.attributes(Self.attributes(), now: .seconds(2))
        #expect(Self.requests(resumed) == ["v2/fw/request/3/chunk/3"])
        #expect(!resumed.contains { if case .begin = $0 { return true } else { return false } })
        let rest = Self.serve(&machine, resumed)
        #expect(Self.states(rest).last == "VERIFIED")
    }

    @Test("a restart: the durable prefix restores, a changed chunk size resumes mid-chunk")
    func resumeAfterRestart() {
        let package = OTAPackage(title: "tb-agent", version: "2.0", size: 100, algorithm: .crc32, checksum: ChecksumAlgorithm.crc32.hex(of: Self.data))
        var checksum = Checksum(.crc32)
        checksum.update(Self.data[0..<40])
        var machine = OTADownload(settings: Self.settings(chunk: 16), restored: .init(package: package, durableBytes: 40, checksum: checksum, verified: false))
        #expect(machine.phase == .downloading(package, bytes: 40))
        _ = machine.connected(now: .zero)
        let resumed = machine.attributes(Self.attributes(.crc32), now: .zero)
        #expect(Self.requests(resumed) == ["v2/fw/request/1/chunk/2"])  // bytes 32..<48, of which 40..<48 are new
        let rest = Self.serve(&machine, resumed, chunk: 16)
        let appended = rest.flatMap { if case .append(let b) = $0 { return b } else { return [] } }
        #expect(appended == Array(Self.data[40...]))
        #expect(Self.states(rest).last == "VERIFIED")
    }

    @Test("chunks of another request id or index are ignored; a wrong length is asked for again, then FAILED")
    func wrongChunks() {
        var machine = Self.awaitingFirstChunk()
        #expect(machine.chunk(topic: "v2/fw/response/1/chunk/0", payload: Array(Self.data[0..<32]), now: .zero).isEmpty)
        #expect(machine.chunk(topic: "v2/fw/response/2/chunk/1", payload: Array(Self.data[32..<64]), now: .zero).isEmpty)
        #expect(machine.chunk(topic: "v2/fw/response/2/chunk/x", payload: [1], now: .zero).isEmpty)
        #expect(machine.ignoredChunks == 3)
        let short = machine.chunk(topic: "v2/fw/response/2/chunk/0", payload: [1, 2, 3], now: .zero)
        #expect(Self.requests(short) == ["v2/fw/request/2/chunk/0"])
        _ = machine.chunk(topic: "v2/fw/response/2/chunk/0", payload: [1, 2, 3], now: .zero)
        let last = machine.chunk(topic: "v2/fw/response/2/chunk/0", payload: [1, 2, 3], now: .zero)
        #expect(Self.states(last) == ["FAILED"])
        #expect(Self.error(last)?.hasPrefix("chunk 0 of tb-agent 2.0") == true)
    }

    @Test("timeouts: asked again after chunk_timeout, FAILED after the tries (kept for the next session, which resumes)")
    func timeouts() {
        var machine = Self.awaitingFirstChunk()
        #expect(machine.deadline == .seconds(10))
        #expect(machine.tick(now: .seconds(9)).isEmpty)
        #expect(Self.requests(machine.tick(now: .seconds(10))) == ["v2/fw/request/2/chunk/0"])
        machine.requestSent(now: .seconds(10))
        _ = machine.tick(now: .seconds(20))
        machine.requestSent(now: .seconds(20))
        let failed = machine.tick(now: .seconds(30))
        #expect(Self.states(failed) == ["FAILED"])
        #expect(Self.error(failed)?.hasPrefix("no answer to the request for chunk 0") == true)
        #expect(!failed.contains(.discard))
        machine.disconnected()
        _ = machine.connected(now: .seconds(40))
        #expect(Self.requests(machine.attributes(Self.attributes(), now: .seconds(40))) == ["v2/fw/request/3/chunk/0"])
    }

    @Test("the server's error answers are FAILED with a reason a person can act on", arguments: [
        ("NOT_FOUND", "unassigned"), ("PAYLOAD_TOO_LARGE", "lower [ota] chunk_size"), ("FAILURE", "URL package"),
    ])
    func serverErrors(_ answer: String, _ hint: String) {
        var machine = OTADownload(settings: Self.settings())
        _ = machine.connected(now: .zero)
        _ = machine.attributes(Self.attributes(), now: .zero)
        let actions = machine.serverError(Array(answer.utf8))
        #expect(Self.states(actions) == ["FAILED"])
        #expect((Self.error(actions) ?? "").utf8.count > 0)
        #expect(TextSearchProxy.includes(Self.error(actions) ?? "", hint))
    }

    @Test("refused packages: a URL package, another title, a bad checksum; the running version needs nothing")
    func refusals() {
        var machine = OTADownload(settings: Self.settings())
        _ = machine.connected(now: .zero)
        let url = machine.attributes(.object([("shared", .object([
            ("fw_title", .string("tb-agent")), ("fw_version", .string("2.0")), ("fw_url", .string("https://example.com/fw.bin")),
        ]))]), now: .zero)
        #expect(Self.error(url)?.hasPrefix("the package tb-agent 2.0 is a URL package") == true)
        let other = machine.attributes(Self.attributes(title: "router-fw"), now: .zero)
        #expect(TextSearchProxy.includes(Self.error(other) ?? "", "[ota] title"))
        let bad = machine.attributes(Self.attributes(checksum: "xyz"), now: .zero)
        #expect(TextSearchProxy.includes(Self.error(bad) ?? "", "not a SHA256 checksum"))
        #expect(machine.attributes(Self.attributes(version: "1.0"), now: .zero).isEmpty)
    }

    @Test("the free-space check: the package and the margin must fit, the message says how much is needed and free")
    func freeSpace() {
        let package = OTAPackage(title: "tb-agent", version: "2.0", size: 10 << 20, algorithm: .sha256, checksum: "")
        #expect(OTADownload.spaceProblem(package: package, free: 20 << 20, directory: "/var/lib/tb-agent/ota") == nil)
        let problem = OTADownload.spaceProblem(package: package, free: 12 << 20, directory: "/var/lib/tb-agent/ota") ?? ""
        #expect(problem.hasPrefix("not enough space in /var/lib/tb-agent/ota"))
        #expect(TextSearchProxy.includes(problem, "14 MiB needed") && TextSearchProxy.includes(problem, "12 MiB free"))
    }
}

/// Substring checks in tests without Foundation's `contains`.
enum TextSearchProxy {
    static func includes(_ text: String, _ part: String) -> Bool {
        let a = Array(text.utf8), b = Array(part.utf8)
        guard b.count <= a.count else { return false }
        return (0...(a.count - b.count)).contains { a[$0..<$0 + b.count].elementsEqual(b) }
    }
}
