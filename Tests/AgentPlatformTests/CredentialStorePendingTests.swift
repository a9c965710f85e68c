import AgentCore
import AgentPlatform
import AgentTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 10: the pending generation (finding 2), credentials validated before they are stored (finding 4), and a
/// file written by a newer tb-agent refused without a fallback and never overwritten (finding 7).
@Suite struct CredentialStorePendingTests {
    static let server = CredentialStoreTests.server
    static let old = CredentialStoreTests.old
    static let new = StoredCredentials(
        server: server, deviceName: "rpi-0001", credentials: .accessToken(Secret("new-token-CCCC")),
        issuedAt: UTCTimestamp(secondsSinceEpoch: 1_780_007_200))

    struct Crash: Error {}

    static func store(with current: StoredCredentials? = CredentialStorePendingTests.old) throws -> CredentialStore {
        let store = try CredentialStoreTests.freshStore()
        if let current { try store.save(current) }
        return store
    }

    static func files(_ store: CredentialStore) -> [String] { CredentialStoreTests.files(in: store.directory) }

    static func bytes(_ path: String) -> Data? { try? Data(contentsOf: URL(fileURLWithPath: path)) }

    // MARK: the pending generation

    @Test func pendingCredentialsLiveBesideTheCurrentOnesUntilCommitted() throws {
        let store = try Self.store()
        try store.savePending(Self.new)
        #expect(CredentialStoreTests.mode(store.pendingPath) == 0o600)
        #expect(try store.load() == .found(Self.old, source: .current, warnings: []))
        #expect(try store.loadPending() == .found(Self.new, source: .pending, warnings: []))
        try store.commitPending(Self.new)
        #expect(try store.load() == .found(Self.new, source: .current, warnings: []))
        #expect(try store.loadPending().credentials == nil)
        let previous = try StoredCredentials(document: Array(try #require(Self.bytes(store.previousPath))))
        #expect(previous == Self.old)
        #expect(Self.files(store) == ["credentials.json", "credentials.lock", "credentials.previous.json"])
    }

    @Test func aCommitRecognisesThePendingFileByItsCredentials() throws {
        let store = try Self.store()
        try store.savePending(Self.new)
        var later = Self.new
        later.issuedAt = UTCTimestamp(secondsSinceEpoch: 1_780_009_999)
        try store.commitPending(later)
        // The file written when they arrived is the one kept.
        #expect(try store.load().credentials == Self.new)
    }

    @Test func aCommitWithoutAPendingFileStoresTheCredentials() throws {
        let store = try Self.store()
        try store.commitPending(Self.new)
        #expect(try store.load().credentials == Self.new)
        #expect(try StoredCredentials(document: Array(try #require(Self.bytes(store.previousPath)))) == Self.old)
    }

    @Test func discardingForgetsOnlyThePendingGeneration() throws {
        let store = try Self.store()
        try store.savePending(Self.new)
        #expect(try store.discardPending())
        #expect(try store.loadPending().credentials == nil)
        #expect(try store.load() == .found(Self.old, source: .current, warnings: []))
        #expect(try store.discardPending() == false)
    }

    @Test func saveAndForgetRemoveAPendingGeneration() throws {
        let store = try Self.store()
        try store.savePending(Self.new)
        try store.save(CredentialStoreTests.new)  // `tb-agent provision --force`: newer than anything pending
        #expect(try store.loadPending().credentials == nil)
        try store.savePending(Self.new)
        #expect(try store.forget())
        #expect(try store.loadPending().credentials == nil)
    }

    @Test func aDamagedPendingFileIsIgnoredWithAWarning() throws {
        let store = try Self.store()
        try Data("{\"format\":1,\"pay".utf8).write(to: URL(fileURLWithPath: store.pendingPath))
        guard case .none(_, let warnings) = try store.loadPending() else {
            Issue.record("a torn pending file was loaded")
            return
        }
        #expect(warnings.first?.contains("damaged") == true)
        #expect(try store.load().credentials == Self.old)
    }

    @Test func pendingCredentialsForAnotherServerAreNotUsed() throws {
        let store = try Self.store()
        try store.savePending(Self.new)
        #expect(try store.loadPending(for: ServerEndpoint(host: "other.example.com", port: 1883)).credentials == nil)
        #expect(try store.loadPending(for: Self.server).credentials == Self.new)
    }

    /// Interrupted after every step of `savePending`: the current credentials are untouched, the pending ones are
    /// there or not (never garbage), and the next write works and leaves no temporary file.
    @Test(arguments: CredentialStore.PendingStep.saveCases)
    func crashWhileSavingPending(_ crashStep: CredentialStore.PendingStep) throws {
        let store = try Self.store()
        #expect(throws: AgentError.self) {
            try store.savePending(Self.new) { step in if step == crashStep { throw Crash() } }
        }
        #expect(try store.load() == .found(Self.old, source: .current, warnings: []))
        let pending = try store.loadPending()
        if crashStep == .pending(.renamed) || crashStep == .pending(.directorySynced) {
            #expect(pending == .found(Self.new, source: .pending, warnings: []))
        } else {
            #expect(pending == .none(reason: "no pending credentials in \(store.directory)", warnings: []))
        }
        try store.savePending(Self.new)
        #expect(try store.loadPending().credentials == Self.new)
        #expect(!Self.files(store).contains { $0.hasSuffix(".tmp") })
    }

    /// Interrupted after every step of `commitPending`: the new credentials are always either pending or current
    /// ("once the agent logged that they were stored, they survive"), the old ones current or previous, and a
    /// commit after the restart finishes the job.
    @Test(arguments: CredentialStore.PendingStep.commitCases)
    func crashWhileCommitting(_ crashStep: CredentialStore.PendingStep) throws {
        let store = try Self.store()
        try store.savePending(Self.new)
        #expect(throws: AgentError.self) {
            try store.commitPending(Self.new) { step in if step == crashStep { throw Crash() } }
        }
        let current = try store.load().credentials
        let pending = try store.loadPending().credentials
        if crashStep == .committed || crashStep == .committedSynced {
            #expect(current == Self.new)
            #expect(pending == nil)
        } else {
            #expect(current == Self.old)
            #expect(pending == Self.new)
        }
        // The restart tries the pending credentials (if any) and commits them once they connect.
        if pending != nil { try store.commitPending(Self.new) }
        #expect(try store.load() == .found(Self.new, source: .current, warnings: []))
        #expect(try store.loadPending().credentials == nil)
        #expect(try StoredCredentials(document: Array(try #require(Self.bytes(store.previousPath)))) == Self.old)
        #expect(!Self.files(store).contains { $0.hasSuffix(".tmp") })
    }

    @Test(arguments: AtomicFile.Step.allCases.filter { $0 == .tempWritten || $0 == .tempSynced })
    func aFailedPendingWriteKeepsEverythingAndSaysWhatToDo(_ failingStep: AtomicFile.Step) throws {
        let store = try Self.store()
        do {
            try store.savePending(Self.new) { step in
                if step == .pending(failingStep) { throw AtomicFile.SimulatedFailure(errno: ENOSPC) }
            }
            Issue.record("the write succeeded")
        } catch {
            #expect(error.code == .storageFailure)
            #expect(error.message.contains("free space"))
            #expect(!error.description.contains("new-token-CCCC"))
        }
        #expect(try store.load() == .found(Self.old, source: .current, warnings: []))
        #expect(try store.loadPending().credentials == nil)
    }

    // MARK: finding 4: never stored

    @Test(arguments: [
        DeviceCredentials.accessToken(Secret("Zq9\u{01}Wv8")), .accessToken(Secret("Zq9" + String(Character(Unicode.Scalar(0xFFFF)!)) + "Wv8")),
        .accessToken(Secret("Zq9\u{0}Wv8")), .mqttBasic(clientId: "c\u{7F}", username: "u", password: nil),
        .accessToken(Secret(String(repeating: "t", count: 300))),
    ])
    func unusableCredentialsAreNeverWritten(_ credentials: DeviceCredentials) throws {
        let store = try Self.store()
        let record = StoredCredentials(
            server: Self.server, deviceName: "rpi-0001", credentials: credentials,
            issuedAt: UTCTimestamp(secondsSinceEpoch: 1_780_007_200))
        let before = Self.bytes(store.currentPath)
        let writes: [() throws -> Void] = [
            { _ = try store.save(record) }, { try store.savePending(record) }, { try store.commitPending(record) },
        ]
        for write in writes {
            do {
                try write()
                Issue.record("stored \(credentials)")
            } catch let error as AgentError {
                #expect(error.code == .storageFailure)
                #expect(error.message.contains("not stored"))
                #expect(!error.message.contains("Zq9") && !error.message.contains("ttt"))
            } catch {
                Issue.record("\(error)")
            }
        }
        #expect(Self.bytes(store.currentPath) == before)
        #expect(!FileManager.default.fileExists(atPath: store.pendingPath))
    }

    /// What an older agent stored with a control character counts as damaged: the previous generation is used.
    @Test func storedUnusableCredentialsFallBackToThePreviousGeneration() throws {
        let store = try Self.store()
        let bad = StoredCredentials(
            server: Self.server, deviceName: "rpi-0001", credentials: .accessToken(Secret("Zq9\u{01}Wv8")),
            issuedAt: UTCTimestamp(secondsSinceEpoch: 1_780_007_200))
        // As today's main wrote it: the previous generation first, then the unusable current one.
        try Data(try #require(Self.bytes(store.currentPath))).write(to: URL(fileURLWithPath: store.previousPath))
        try Data(bad.document).write(to: URL(fileURLWithPath: store.currentPath))
        guard case .found(let stored, .previous, let warnings) = try store.load() else {
            Issue.record("unusable credentials were loaded")
            return
        }
        #expect(stored == Self.old)
        #expect(warnings.first?.contains("cannot be used") == true)
        #expect(warnings.first?.contains("Zq9") == false)
    }

    // MARK: finding 7: a newer format is refused, without a fallback, and never overwritten

    static func writeNewer(_ path: String, format: Int = 2) throws -> Data {
        let text = String(decoding: new.document, as: UTF8.self).replacingOccurrences(of: "\"format\": 1,", with: "\"format\": \(format),")
        let data = Data(text.utf8)
        try data.write(to: URL(fileURLWithPath: path))
        return data
    }

    static func isNewerFormatRefusal(_ error: AgentError, _ path: String) -> Bool {
        error.code == .storageFailure && error.message.contains(path) && error.message.contains("newer tb-agent (format 2")
            && error.message.lowercased().contains("upgrade tb-agent") && error.message.contains("move the file away")
            && !error.message.contains("new-token-CCCC")
    }

    @Test func aNewerCurrentFileIsRefusedWithoutFallingBack() throws {
        let store = try Self.store()
        try store.save(CredentialStoreTests.new)  // a good previous generation exists
        _ = try Self.writeNewer(store.currentPath)
        do {
            let lookup = try store.load()
            Issue.record("loaded \(lookup): the previous generation (probably revoked) was used")
        } catch {
            #expect(Self.isNewerFormatRefusal(error, store.currentPath), "\(error)")
        }
        #expect(throws: AgentError.self) { try store.load(for: Self.server) }
    }

    @Test func aNewerFileIsNeverOverwritten() throws {
        let store = try Self.store()
        try store.save(CredentialStoreTests.new)
        let newer = try Self.writeNewer(store.currentPath)
        let previous = Self.bytes(store.previousPath)
        let writes: [(String, () throws -> Void)] = [
            ("save", { _ = try store.save(Self.new) }), ("savePending", { try store.savePending(Self.new) }),
            ("commitPending", { try store.commitPending(Self.new) }), ("forget", { _ = try store.forget() }),
        ]
        for (name, write) in writes {
            do {
                try write()
                Issue.record("\(name) succeeded over a newer file")
            } catch let error as AgentError {
                #expect(Self.isNewerFormatRefusal(error, store.currentPath), "\(name): \(error)")
            } catch {
                Issue.record("\(name): \(error)")
            }
            #expect(Self.bytes(store.currentPath) == newer, "\(name) changed the newer file")
            #expect(Self.bytes(store.previousPath) == previous, "\(name) changed the previous generation")
        }
        #expect(!FileManager.default.fileExists(atPath: store.pendingPath))
    }

    @Test func newerPreviousAndPendingFilesAreNotReplacedEither() throws {
        let store = try Self.store()
        let newerPrevious = try Self.writeNewer(store.previousPath)
        do {
            try store.save(Self.new)
            Issue.record("save replaced a newer previous generation")
        } catch {
            #expect(Self.isNewerFormatRefusal(error, store.previousPath), "\(error)")
        }
        #expect(Self.bytes(store.previousPath) == newerPrevious)
        try FileManager.default.removeItem(atPath: store.previousPath)

        let newerPending = try Self.writeNewer(store.pendingPath)
        #expect(throws: AgentError.self) { try store.loadPending() }
        #expect(throws: AgentError.self) { try store.savePending(Self.new) }
        #expect(throws: AgentError.self) { try store.discardPending() }
        #expect(throws: AgentError.self) { try store.save(Self.new) }
        #expect(Self.bytes(store.pendingPath) == newerPending)
        #expect(try store.load().credentials == Self.old)
    }

    /// Damage still falls back as before: only a newer format is refused.
    @Test func damageIsNotANewerFormat() throws {
        let store = try Self.store()
        try store.save(CredentialStoreTests.new)
        _ = try Self.writeNewer(store.currentPath, format: 0)
        #expect(try store.load().credentials == Self.old)
    }
}
