import AgentCore
import AgentPlatform
import AgentTestSupport
import Foundation
import Testing

@Suite struct ClockFloorFileTests {
    @Test func savesAndLoadsTheFloorAndIgnoresGarbage() throws {
        let directory = try TestSupport.makeTemporaryDirectory("clock-floor")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = ClockFloorFile(stateDirectory: directory.path)
        #expect(file.load() == nil)
        try file.save(1_800_000_000_123)
        #expect(file.load() == 1_800_000_000_123)
        let attributes = try FileManager.default.attributesOfItem(atPath: file.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        try "not a number".write(toFile: file.path, atomically: false, encoding: .utf8)
        #expect(file.load() == nil)
    }

    @Test func anUnwritableDirectoryIsAStorageError() throws {
        let file = ClockFloorFile(stateDirectory: "/proc/tb-agent-missing")
        #expect(throws: AgentError.self) { try file.save(1) }
    }
}
