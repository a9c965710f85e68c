import AgentCore
import AgentPlatform
import AgentTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 10, finding 6: one agent per state directory.
@Suite struct StateDirectoryLockTests {
    func stateDirectory() throws -> String {
        let dir = try TestSupport.makeTemporaryDirectory("lock").appendingPathComponent("state").path
        try StateDirectory.ensure(dir)
        return dir
    }

    @Test func aSecondHolderIsRefusedNamingTheFirstByItsPID() throws {
        let dir = try self.stateDirectory()
        let first = try StateDirectoryLock.acquire(dir, holder: "tb-agent run")
        #expect {
            _ = try StateDirectoryLock.acquire(dir, holder: "tb-agent provision")
        } throws: { error in
            guard let error = error as? AgentError else { return false }
            return error.code == .invalidConfiguration && error.message.contains("PID \(getpid())")
                && error.message.contains("`tb-agent run`") && error.message.contains(dir)
                && error.message.contains("state_dir")
        }
        first.release()
        let second = try StateDirectoryLock.acquire(dir, holder: "tb-agent provision")
        #expect(try String(contentsOfFile: dir + "/agent.lock", encoding: .utf8) == "\(getpid()) tb-agent provision\n")
        second.release()
        // Released: the PID is gone, the file stays (removing it could let two processes lock two files).
        #expect(try String(contentsOfFile: dir + "/agent.lock", encoding: .utf8) == "")
    }

    @Test func theLockGoesWithTheHolder() throws {
        let dir = try self.stateDirectory()
        do { _ = try StateDirectoryLock.acquire(dir, holder: "tb-agent run") }
        let again = try StateDirectoryLock.acquire(dir, holder: "tb-agent run")
        again.release()
    }

    @Test func aLinkPlantedAsTheLockFileIsNotFollowed() throws {
        let dir = try self.stateDirectory()
        let victim = URL(fileURLWithPath: dir).deletingLastPathComponent().appendingPathComponent("victim")
        try Data("keep me\n".utf8).write(to: victim)
        try FileManager.default.createSymbolicLink(atPath: dir + "/agent.lock", withDestinationPath: victim.path)
        #expect(throws: AgentError.self) { _ = try StateDirectoryLock.acquire(dir, holder: "tb-agent run") }
        #expect(try String(contentsOf: victim, encoding: .utf8) == "keep me\n")
    }
}
