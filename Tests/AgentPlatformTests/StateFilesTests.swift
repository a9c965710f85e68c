import AgentCore
import AgentPlatform
import AgentTestSupport
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 10, finding 5: state files are opened relative to their directory and never through a symbolic link, and
/// a state directory another user controls is refused. Finding 10: an unusable spool directory does not stop the
/// agent; the spool runs from memory and says why.
@Suite struct StateFilesTests {
    static let isRoot = geteuid() == 0
    /// A user that is neither root nor the one running the tests.
    static let otherUser: uid_t = 65534

    func payload(_ i: Int) -> [UInt8] { Array(#"[{"ts":\#(1_700_000_000_000 + i),"values":{"n":\#(i)}}]"#.utf8) }

    /// A file outside the state directory that a planted link points at: it must keep its content.
    func victim(_ dir: URL) throws -> URL {
        let victim = dir.appendingPathComponent("victim")
        try Data("precious content that must survive\n".utf8).write(to: victim)
        return victim
    }

    func content(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "<unreadable>" }

    func isSymlink(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFLNK
    }

    // MARK: finding 5: planted links

    @Test func aLinkPlantedAsTheSpoolStatesTemporaryFileIsNotFollowed() throws {
        let root = try TestSupport.makeTemporaryDirectory("planted")
        let victim = try self.victim(root)
        let spoolDir = root.appendingPathComponent("spool")
        let spool = Spool(directoryOrMemory: spoolDir.path, settings: .init(syncInterval: .zero))
        try FileManager.default.createSymbolicLink(
            atPath: spoolDir.appendingPathComponent("state.json.tmp").path, withDestinationPath: victim.path)
        let sequence = try spool.append(self.payload(1))
        try spool.acknowledge([sequence])
        try spool.sync()
        #expect(self.content(victim) == "precious content that must survive\n")
        #expect(!self.isSymlink(spoolDir.appendingPathComponent("state.json").path))
        #expect(self.content(spoolDir.appendingPathComponent("state.json")).contains("\"acked\":\(sequence)"))
        #expect(spool.problem == nil)
    }

    @Test func aLinkPlantedAsTheNextSpoolSegmentIsNotFollowed() throws {
        let root = try TestSupport.makeTemporaryDirectory("planted")
        let victim = try self.victim(root)
        let spoolDir = root.appendingPathComponent("spool")
        let spool = Spool(directoryOrMemory: spoolDir.path, settings: .init(segmentBytes: 200, syncInterval: .zero))
        _ = try spool.append(self.payload(1))
        // The next segments' names are predictable: plant links under each.
        for sequence in 2...6 {
            let name = String(repeating: "0", count: 19) + String(sequence) + ".seg"
            try FileManager.default.createSymbolicLink(atPath: spoolDir.appendingPathComponent(name).path, withDestinationPath: victim.path)
        }
        for i in 2...6 { _ = try? spool.append(self.payload(i)) }
        #expect(self.content(victim) == "precious content that must survive\n")
        // Nothing is lost: what flash did not take is kept in memory and still sent; the problem names the cause.
        #expect(try spool.pending(limit: 100).map(\.payload) == (1...6).map(self.payload))
        let problem = try #require(spool.problem)
        #expect(problem.message.contains("not followed"), "\(problem.message)")
    }

    @Test func aLinkPlantedAsAnExistingSegmentIsRemovedNeverFollowedNorTruncated() throws {
        let root = try TestSupport.makeTemporaryDirectory("planted")
        let victim = try self.victim(root)
        let spoolDir = root.appendingPathComponent("spool")
        do {
            let spool = Spool(directoryOrMemory: spoolDir.path, settings: .init(syncInterval: .zero))
            _ = try spool.append(self.payload(1))
        }
        // Not a valid segment: recovery would cut it to nothing if it followed the link.
        let planted = spoolDir.appendingPathComponent(String(repeating: "0", count: 18) + "50.seg").path
        try FileManager.default.createSymbolicLink(atPath: planted, withDestinationPath: victim.path)
        let spool = Spool(directoryOrMemory: spoolDir.path, settings: .init(syncInterval: .zero))
        #expect(self.content(victim) == "precious content that must survive\n")
        #expect(!FileManager.default.fileExists(atPath: planted) && !self.isSymlink(planted))
        #expect(spool.recoveryNotes.contains { $0.contains(planted) && $0.contains("symbolic link") }, "\(spool.recoveryNotes)")
        #expect(spool.problem == nil)
        #expect(try spool.pending().map(\.payload) == [self.payload(1)])
    }

    @Test func aFIFOInPlaceOfTheSpoolStateDoesNotBlockTheStart() async throws {
        let root = try TestSupport.makeTemporaryDirectory("planted")
        let spoolDir = root.appendingPathComponent("spool")
        try FileManager.default.createDirectory(at: spoolDir, withIntermediateDirectories: false)
        chmod(spoolDir.path, 0o700)
        #expect(mkfifo(spoolDir.appendingPathComponent("state.json").path, 0o600) == 0)
        #expect(mkfifo(spoolDir.appendingPathComponent("00000000000000000001.seg").path, 0o600) == 0)
        // On a thread of its own: a blocked open must fail the test, not hang it.
        let opened = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let done = Mutex(false)
            Thread.detachNewThread {
                let spool = Spool(directoryOrMemory: spoolDir.path, settings: .init(syncInterval: .zero))
                _ = spool.status
                if done.withLock({ let first = !$0; $0 = true; return first }) { continuation.resume(returning: true) }
            }
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: 10)
                if done.withLock({ let first = !$0; $0 = true; return first }) { continuation.resume(returning: false) }
            }
        }
        #expect(opened, "opening the spool blocked on a FIFO")
    }

    @Test func aLinkInPlaceOfTheSpoolDirectoryIsNotFollowed() throws {
        let root = try TestSupport.makeTemporaryDirectory("planted")
        let elsewhere = root.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: false)
        let spoolDir = root.appendingPathComponent("spool")
        try FileManager.default.createSymbolicLink(atPath: spoolDir.path, withDestinationPath: elsewhere.path)
        let spool = Spool(directoryOrMemory: spoolDir.path, settings: .init(syncInterval: .zero))
        _ = try? spool.append(self.payload(1))
        #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere.path).isEmpty)
        let problem = try #require(spool.problem)
        #expect(problem.message.contains("symbolic link") && problem.message.contains("rm \(spoolDir.path)"), "\(problem.message)")
        #expect(try spool.pending().map(\.payload) == [self.payload(1)])
    }

    @Test func aLinkPlantedAsACredentialsTemporaryFileIsNotFollowed() throws {
        let root = try TestSupport.makeTemporaryDirectory("planted")
        let victim = try self.victim(root)
        let state = root.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(
            atPath: state.appendingPathComponent("credentials.json.tmp").path, withDestinationPath: victim.path)
        let record = StoredCredentials(
            server: ServerEndpoint(host: "127.0.0.1", port: 1883), deviceName: "d",
            credentials: .accessToken(Secret("token-1")), issuedAt: UTCTimestamp(secondsSinceEpoch: 1_700_000_000))
        try CredentialStore(directory: state.path).save(record)
        #expect(self.content(victim) == "precious content that must survive\n")
        #expect(try CredentialStore(directory: state.path).load().credentials == record)
    }

    // MARK: finding 5: who owns the state directory

    @Test func aStateDirectoryWritableByOthersIsRefusedWithTheFix() throws {
        let root = try TestSupport.makeTemporaryDirectory("owner")
        let state = root.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: false)
        for mode: mode_t in [0o777, 0o770, 0o1777] {
            chmod(state.path, mode)
            #expect {
                try StateDirectory.ensure(state.path)
            } throws: { error in
                let message = (error as? AgentError)?.message ?? ""
                return message.contains(state.path) && message.contains("chmod 700 \(state.path)")
            }
        }
        // Readable by others but not writable: tightened, as before.
        chmod(state.path, 0o755)
        #expect(try StateDirectory.ensure(state.path).isEmpty)
        var status = stat()
        stat(state.path, &status)
        #expect(status.st_mode & 0o777 == 0o700)
    }

    @Test(.enabled(if: Self.isRoot, "chown needs root"))
    func aStateDirectoryOfAnotherUserIsRefusedWithTheFix() throws {
        let root = try TestSupport.makeTemporaryDirectory("owner")
        let state = root.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: false)
        chmod(state.path, 0o700)
        #expect(chown(state.path, Self.otherUser, Self.otherUser) == 0)
        #expect {
            try StateDirectory.ensure(state.path)
        } throws: { error in
            let message = (error as? AgentError)?.message ?? ""
            return message.contains(state.path) && message.contains("chown -R root: \(state.path)")
        }
        // The credential store refuses it too, and writes nothing there.
        let record = StoredCredentials(
            server: ServerEndpoint(host: "127.0.0.1", port: 1883), deviceName: "d",
            credentials: .accessToken(Secret("token-1")), issuedAt: UTCTimestamp(secondsSinceEpoch: 1_700_000_000))
        #expect(throws: AgentError.self) { try CredentialStore(directory: state.path).save(record) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: state.path).isEmpty)
        // Root's own directory is fine.
        #expect(chown(state.path, 0, 0) == 0)
        #expect(try StateDirectory.ensure(state.path).isEmpty)
    }

    @Test(.enabled(if: Self.isRoot, "chown needs root"))
    func aStateDirectoryBelowAnotherUsersDirectoryIsRefused() throws {
        let root = try TestSupport.makeTemporaryDirectory("owner")
        let theirs = root.appendingPathComponent("theirs")
        try FileManager.default.createDirectory(at: theirs, withIntermediateDirectories: false)
        #expect(chown(theirs.path, Self.otherUser, Self.otherUser) == 0)
        let state = theirs.appendingPathComponent("state")
        #expect {
            try StateDirectory.ensure(state.path)
        } throws: { error in
            ((error as? AgentError)?.message ?? "").contains("the directory \(theirs.path), above the state directory")
        }
        #expect(!FileManager.default.fileExists(atPath: state.path))
        // Below a sticky, world-writable directory such as /tmp: fine.
        let sticky = root.appendingPathComponent("sticky")
        try FileManager.default.createDirectory(at: sticky, withIntermediateDirectories: false)
        chmod(sticky.path, 0o1777)
        #expect(try StateDirectory.ensure(sticky.appendingPathComponent("state").path).isEmpty)
    }

    // MARK: finding 10: an unusable spool directory

    @Test func aFileInPlaceOfTheSpoolDirectoryMakesAMemorySpoolThatSaysWhy() throws {
        let root = try TestSupport.makeTemporaryDirectory("unusable")
        let spoolDir = root.appendingPathComponent("spool")
        try Data("not a directory".utf8).write(to: spoolDir)
        let spool = Spool(directoryOrMemory: spoolDir.path, settings: .init(syncInterval: .zero))
        let problem = try #require(spool.problem)
        #expect(problem.message.contains("rm \(spoolDir.path)"), "\(problem.message)")
        #expect(spool.recoveryNotes.contains { $0.contains("kept in memory") && $0.contains(spoolDir.path) })
        _ = try? spool.append(self.payload(1))
        _ = try? spool.append(self.payload(2))
        let pending = try spool.pending()
        #expect(pending.map(\.payload) == [self.payload(1), self.payload(2)])
        _ = try? spool.acknowledge(pending.map(\.sequence))
        #expect(spool.status.depth == 0)
        #expect(self.content(spoolDir) == "not a directory")
        // The throwing initializer does not stop the agent either.
        #expect(try Spool(directory: spoolDir.path).problem != nil)
    }

    @Test(.enabled(if: Self.isRoot, "chown needs root"))
    func aSpoolDirectoryOfAnotherUserMakesAMemorySpoolThatSaysWhy() throws {
        let root = try TestSupport.makeTemporaryDirectory("unusable")
        let spoolDir = root.appendingPathComponent("spool")
        try FileManager.default.createDirectory(at: spoolDir, withIntermediateDirectories: false)
        #expect(chown(spoolDir.path, Self.otherUser, Self.otherUser) == 0)
        let spool = Spool(directoryOrMemory: spoolDir.path, settings: .init(syncInterval: .zero))
        let problem = try #require(spool.problem)
        #expect(problem.message.contains("chown -R root: \(spoolDir.path)"), "\(problem.message)")
        _ = try? spool.append(self.payload(1))
        #expect(try spool.pending().map(\.payload) == [self.payload(1)])
        #expect(try FileManager.default.contentsOfDirectory(atPath: spoolDir.path).isEmpty)
    }

    @Test func aSpoolThatStartedInMemoryUsesTheDirectoryOnceItIsFixed() throws {
        let root = try TestSupport.makeTemporaryDirectory("unusable")
        let spoolDir = root.appendingPathComponent("spool")
        try Data("x".utf8).write(to: spoolDir)
        let spool = Spool(directoryOrMemory: spoolDir.path, settings: .init(syncInterval: .zero))
        _ = try? spool.append(self.payload(1))
        try FileManager.default.removeItem(at: spoolDir)
        try spool.append(self.payload(2))
        #expect(spool.problem == nil)
        #expect(try spool.pending().map(\.payload) == [self.payload(1), self.payload(2)])
        #expect(try FileManager.default.contentsOfDirectory(atPath: spoolDir.path).contains { $0.hasSuffix(".seg") })
    }
}
