import AgentPlatform
import AgentTestSupport
import Foundation
import Synchronization
import TBJSON
import Testing

@Suite struct StatusSocketTests {
    @Test func answersEachConnectionWithTheCurrentStatus() throws {
        let path = try TestSupport.makeTemporaryDirectory("status").appendingPathComponent("status.sock").path
        let counter = Counter()
        let server = try StatusSocketServer(path: path) { ["state": "online", "n": .integer(counter.next())] }
        #expect(StatusSocketServer.query(path: path) == ["state": "online", "n": 1])
        #expect(StatusSocketServer.query(path: path)?["n"] == 2)
        server.stop()
        #expect(StatusSocketServer.query(path: path) == nil)
    }

    @Test func staleSocketFromACrashIsReplaced() throws {
        let path = try TestSupport.makeTemporaryDirectory("status").appendingPathComponent("status.sock").path
        do {
            let first = try StatusSocketServer(path: path) { "first" }
            _ = first  // dropped without stop(): deinit cleans up; simulate a crash by binding again anyway
        }
        let second = try StatusSocketServer(path: path) { "second" }
        #expect(StatusSocketServer.query(path: path) == "second")
        second.stop()
    }
}

final class Counter: Sendable {
    private let n = Mutex<Int64>(0)
    func next() -> Int64 { self.n.withLock { $0 += 1; return $0 } }
}
