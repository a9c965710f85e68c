import AgentCore
import AgentPlatform
import AgentTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct CredentialStoreTests {
    static let server = ServerEndpoint(host: "tb.example.com", port: 1883)
    static let old = StoredCredentials(
        server: server, deviceName: "rpi-0001", credentials: .accessToken(Secret("old-token-AAAA")),
        issuedAt: UTCTimestamp(secondsSinceEpoch: 1_780_000_000))
    static let new = StoredCredentials(
        server: server, deviceName: "rpi-0001",
        credentials: .mqttBasic(clientId: "cid", username: "user", password: Secret("new-password-BBBB")),
        issuedAt: UTCTimestamp(secondsSinceEpoch: 1_780_003_600))

    struct Crash: Error {}

    static func freshStore() throws -> CredentialStore {
        let root = try TestSupport.makeTemporaryDirectory("store")
        return CredentialStore(directory: root.path + "/var/lib/tb-agent")
    }

    static func mode(_ path: String) -> mode_t {
        var status = stat()
        guard stat(path, &status) == 0 else { return 0 }
        return status.st_mode & 0o7777
    }

    static func files(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    @Test func createsDirectory0700AndFiles0600() throws {
        let store = try Self.freshStore()
        #expect(try store.save(Self.old) == .written)
        #expect(Self.mode(store.directory) == 0o700)
        #expect(Self.mode(store.currentPath) == 0o600)
        #expect(Self.mode(store.directory + "/credentials.lock") == 0o600)
        #expect(try store.save(Self.new) == .written)
        #expect(Self.mode(store.previousPath) == 0o600)
        #expect(Self.files(in: store.directory) == ["credentials.json", "credentials.lock", "credentials.previous.json"])
    }

    @Test func tightensAnExistingDirectory() throws {
        let root = try TestSupport.makeTemporaryDirectory("store")
        let directory = root.path + "/state"
        #expect(mkdir(directory, 0o755) == 0)
        #expect(chmod(directory, 0o755) == 0)
        try CredentialStore(directory: directory).save(Self.old)
        #expect(Self.mode(directory) == 0o700)
    }

    @Test(arguments: [
        CredentialStoreTests.old, CredentialStoreTests.new,
        StoredCredentials(
            server: ServerEndpoint(host: "10.0.0.5", port: 8883), deviceName: "dev \"quoted\" ü",
            credentials: .x509Certificate(certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", certificateFile: "/etc/tb-agent/dev.crt", keyFile: "/etc/tb-agent/dev.key"),
            issuedAt: UTCTimestamp(secondsSinceEpoch: 0)),
        StoredCredentials(
            server: server, deviceName: "n", credentials: .mqttBasic(clientId: nil, username: "only-user", password: nil),
            issuedAt: UTCTimestamp(secondsSinceEpoch: 1_780_000_000)),
    ])
    func roundTripsEveryCredentialType(_ record: StoredCredentials) throws {
        let store = try Self.freshStore()
        try store.save(record)
        #expect(try store.load() == .found(record, source: .current, warnings: []))
        let text = try String(contentsOfFile: store.currentPath, encoding: .utf8)
        #expect(text.contains("\"deviceName\""))
        #expect(text.contains("\"issuedAt\": \"\(record.issuedAt.iso8601)\""))
        #expect(text.contains("\"sha256\""))
        #expect(text.hasSuffix("}\n"))
    }

    /// Found by the fault suite: credentials larger than `load` reads were written, and the store could not be
    /// read back until someone deleted the file.
    @Test func neverWritesWhatItCannotReadBack() throws {
        let store = try Self.freshStore()
        try store.save(Self.old)
        let huge = StoredCredentials(
            server: Self.server, deviceName: "rpi-0001",
            credentials: .x509Certificate(certificate: String(repeating: "C", count: 2 << 20), certificateFile: nil, keyFile: nil),
            issuedAt: UTCTimestamp(secondsSinceEpoch: 1_780_003_600))
        #expect(throws: AgentError.self) { try store.save(huge) }
        #expect(try store.load().credentials == Self.old)
    }

    @Test func unchangedCredentialsAreNotRewritten() throws {
        let store = try Self.freshStore()
        try store.save(Self.old)
        let before = try FileManager.default.attributesOfItem(atPath: store.currentPath)
        #expect(try store.save(Self.old) == .unchanged)
        let after = try FileManager.default.attributesOfItem(atPath: store.currentPath)
        #expect(before[.systemFileNumber] as? Int == after[.systemFileNumber] as? Int)
        #expect(!FileManager.default.fileExists(atPath: store.previousPath))
    }

    @Test func keepsThePreviousGeneration() throws {
        let store = try Self.freshStore()
        try store.save(Self.old)
        try store.save(Self.new)
        let previous = try StoredCredentials(document: Array(try Data(contentsOf: URL(fileURLWithPath: store.previousPath))))
        #expect(previous == Self.old)
        #expect(try store.load().credentials == Self.new)
    }

    @Test func credentialsForAnotherServerAreNotUsed() throws {
        let store = try Self.freshStore()
        try store.save(Self.old)
        let other = ServerEndpoint(host: "tb.example.com", port: 8883)
        guard case .none(let reason, _) = try store.load(for: other) else {
            Issue.record("credentials for \(Self.server) were used for \(other)")
            return
        }
        #expect(reason.contains("tb.example.com:1883"))
        #expect(reason.contains("tb.example.com:8883"))
        #expect(reason.contains("tb-agent provision"))
        #expect(try store.load(for: Self.server).credentials == Self.old)
    }

    @Test func nothingStoredIsNone() throws {
        let store = try Self.freshStore()
        guard case .none(let reason, _) = try store.load() else {
            Issue.record("found credentials in an empty store")
            return
        }
        #expect(reason.contains(store.directory))
    }

    /// Interrupts a replacement after every step: the loader always returns the old or the new credentials, exactly
    /// the old ones until the new file is renamed in place, and the next save works.
    @Test(arguments: CredentialStore.WriteStep.allCases)
    func crashAtEveryStepLeavesOldOrNew(_ crashStep: CredentialStore.WriteStep) throws {
        let store = try Self.freshStore()
        try store.save(Self.old)
        #expect(throws: AgentError.self) {
            try store.save(Self.new) { step in if step == crashStep { throw Crash() } }
        }
        let loaded = try store.load()
        let renamed: Set<CredentialStore.WriteStep> = [.current(.renamed), .current(.directorySynced)]
        let expected = renamed.contains(crashStep) ? Self.new : Self.old
        #expect(loaded == .found(expected, source: .current, warnings: []))

        // A damaged current file after the crash gives old or new, or nothing if no previous generation had been
        // completed yet: never garbage.
        try Data("{\"format\":1,\"payl".utf8).write(to: URL(fileURLWithPath: store.currentPath))
        let previousComplete = ![CredentialStore.WriteStep.previous(.tempWritten), .previous(.tempSynced)].contains(crashStep)
        let fallback = try store.load().credentials
        if previousComplete {
            #expect(fallback == Self.old || fallback == Self.new)
        } else {
            #expect(fallback == nil)
        }

        // Recovery: the next save succeeds despite the leftover temporary files, and leaves none.
        try store.save(Self.new)
        #expect(try store.load().credentials == Self.new)
        #expect(!Self.files(in: store.directory).contains { $0.hasSuffix(".tmp") })
    }

    @Test(arguments: CredentialStore.WriteStep.allCases.filter { if case .current = $0 { return true } else { return false } })
    func crashDuringTheFirstSave(_ crashStep: CredentialStore.WriteStep) throws {
        let store = try Self.freshStore()
        #expect(throws: AgentError.self) {
            try store.save(Self.new) { step in if step == crashStep { throw Crash() } }
        }
        let loaded = try store.load()
        switch loaded {
        case .none: #expect(crashStep == .current(.tempWritten) || crashStep == .current(.tempSynced))
        case .found(let stored, _, _): #expect(stored == Self.new)
        }
    }

    @Test func everyTruncationFallsBackToThePreviousGeneration() throws {
        let store = try Self.freshStore()
        try store.save(Self.old)
        try store.save(Self.new)
        let full = Array(try Data(contentsOf: URL(fileURLWithPath: store.currentPath)))
        for length in 0..<full.count {
            try Data(full[0..<length]).write(to: URL(fileURLWithPath: store.currentPath))
            let loaded = try store.load()
            guard case .found(let stored, let source, let warnings) = loaded else {
                Issue.record("truncated to \(length) bytes: nothing loaded")
                continue
            }
            // Dropping only the final newline leaves a valid document.
            if length == full.count - 1 {
                #expect(stored == Self.new)
            } else {
                #expect(stored == Self.old, "truncated to \(length) bytes")
                #expect(source == .previous)
                #expect(warnings.count == 1 && warnings[0].contains("damaged"))
            }
        }
    }

    @Test func everyFlippedByteGivesOldOrNew() throws {
        let store = try Self.freshStore()
        try store.save(Self.old)
        try store.save(Self.new)
        let full = Array(try Data(contentsOf: URL(fileURLWithPath: store.currentPath)))
        var fellBack = 0
        for index in full.indices {
            var damaged = full
            damaged[index] ^= 0x01
            try Data(damaged).write(to: URL(fileURLWithPath: store.currentPath))
            let loaded = try store.load().credentials
            #expect(loaded == Self.old || loaded == Self.new, "byte \(index) flipped")
            if loaded == Self.old { fellBack += 1 }
        }
        // Only whitespace between tokens may change without being noticed.
        #expect(fellBack > full.count * 9 / 10)
    }

    @Test func anEditedValueFailsTheChecksum() throws {
        let store = try Self.freshStore()
        try store.save(Self.old)
        try store.save(Self.new)
        let text = try String(contentsOfFile: store.currentPath, encoding: .utf8)
        try text.replacingOccurrences(of: "\"cid\"", with: "\"cie\"").write(toFile: store.currentPath, atomically: false, encoding: .utf8)
        let loaded = try store.load()
        guard case .found(let stored, .previous, let warnings) = loaded else {
            Issue.record("an edited file was used: \(loaded)")
            return
        }
        #expect(stored == Self.old)
        #expect(warnings.first?.contains("checksum") == true)
    }

    @Test func damagedWithoutUsablePreviousIsNone() throws {
        let store = try Self.freshStore()
        try store.save(Self.old)
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: store.currentPath))
        guard case .none(let reason, _) = try store.load() else {
            Issue.record("garbage was loaded")
            return
        }
        #expect(reason.contains("damaged"))
        #expect(reason.contains("tb-agent provision --force"))
        try Data("also garbage".utf8).write(to: URL(fileURLWithPath: store.previousPath))
        guard case .none(let both, _) = try store.load() else {
            Issue.record("garbage was loaded")
            return
        }
        #expect(both.contains(store.previousPath))
    }

    /// A write that fails (disk full, read-only) at any step keeps what was stored and says what to do.
    @Test(arguments: CredentialStore.WriteStep.allCases.filter {
        $0 != .previous(.renamed) && $0 != .previous(.directorySynced) && $0 != .current(.renamed)
            && $0 != .current(.directorySynced)
    })
    func failedWriteKeepsWhatWasStored(_ failingStep: CredentialStore.WriteStep) throws {
        let store = try Self.freshStore()
        try store.save(Self.old)
        do {
            try store.save(Self.new) { step in
                if step == failingStep { throw AtomicFile.SimulatedFailure(errno: ENOSPC) }
            }
            Issue.record("the save succeeded")
        } catch {
            #expect(error.code == .storageFailure)
            #expect(error.message.contains(store.directory))
            #expect(error.message.contains("No space left on device"))
            #expect(error.message.contains("free space"))
            #expect(error.message.contains("kept"))
            #expect(!error.description.contains("new-password-BBBB"))
        }
        #expect(try store.load() == .found(Self.old, source: .current, warnings: []))
        #expect(!Self.files(in: store.directory).contains { $0.hasSuffix(".tmp") })
    }

    @Test func aStateDirectoryThatIsAFileIsRefusedWithAFix() throws {
        let root = try TestSupport.makeTemporaryDirectory("store")
        let path = root.path + "/not-a-directory"
        try Data("x".utf8).write(to: URL(fileURLWithPath: path))
        do {
            try CredentialStore(directory: path).save(Self.old)
            Issue.record("saved into a regular file")
        } catch {
            #expect(error.code == .storageFailure)
            #expect(error.message.contains(path))
            #expect(error.message.contains("state_dir"))
        }
    }

    @Test func anUnwritableDirectoryIsReported() throws {
        // /proc refuses new files even to root: a real unwritable directory on any Linux.
        let store = CredentialStore(directory: "/proc/self/fdinfo")
        do {
            try store.save(Self.old)
            Issue.record("saved into /proc")
        } catch {
            #expect(error.code == .storageFailure)
            #expect(error.message.contains("/proc/self/fdinfo"))
            #expect(error.message.contains("kept as they were"))
        }
    }

    @Test func forgetKeepsThePreviousGeneration() throws {
        let store = try Self.freshStore()
        try store.save(Self.old)
        #expect(try store.forget())
        #expect(try store.load().credentials == nil)
        let previous = try StoredCredentials(document: Array(try Data(contentsOf: URL(fileURLWithPath: store.previousPath))))
        #expect(previous == Self.old)
        #expect(try store.forget() == false)
        // Provisioning again after a reset works and keeps the forgotten credentials as the previous generation
        // until the next replacement.
        try store.save(Self.new)
        #expect(try store.load().credentials == Self.new)
    }

    @Test func forgettingADamagedFileKeepsAGoodPrevious() throws {
        let store = try Self.freshStore()
        try store.save(Self.old)
        try store.save(Self.new)
        try Data("torn".utf8).write(to: URL(fileURLWithPath: store.currentPath))
        #expect(try store.forget())
        let previous = try StoredCredentials(document: Array(try Data(contentsOf: URL(fileURLWithPath: store.previousPath))))
        #expect(previous == Self.old)
    }

    @Test func forgetOnAMissingDirectoryIsFalse() throws {
        let store = try Self.freshStore()
        #expect(try store.forget() == false)
    }

    @Test func descriptionsMaskSecrets() throws {
        for record in [Self.old, Self.new] {
            let text = "\(record) \(record.credentials) \(String(reflecting: record.credentials))"
            #expect(!text.contains("old-token-AAAA"))
            #expect(!text.contains("new-password-BBBB"))
        }
    }
}
