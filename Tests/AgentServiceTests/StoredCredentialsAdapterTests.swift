import AgentCore
import AgentPlatform
import AgentService
import AgentTestSupport
import Foundation
import Logging
import Testing

/// The credential store as the run loop sees it, on a real state directory.
@Suite struct StoredCredentialsAdapterTests {
    @Test func pendingCredentialsBecomeTheStoredOnesOnlyWhenCommitted() throws {
        let directory = try TestSupport.makeTemporaryDirectory("adapter")
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = ServerEndpoint(host: "tb.example", port: 8883)
        let store = CredentialStore(directory: directory.path)
        let adapter = StoredCredentialsAdapter(
            store: store, server: server, deviceName: "dev-1", logger: Logger(label: "test"), wallSeconds: { 1_800_000_000 })
        #expect(adapter.load() == nil)
        #expect(adapter.inventory() == CredentialInventory(stored: false, pending: false))
        try adapter.save(.accessToken(Secret("old")))
        try adapter.savePending(.accessToken(Secret("new")))
        #expect(adapter.load() == .accessToken(Secret("old")))
        #expect(adapter.loadPending() == .accessToken(Secret("new")))
        #expect(adapter.inventory() == CredentialInventory(stored: true, pending: true))
        try adapter.commitPending(.accessToken(Secret("new")))
        #expect(adapter.load() == .accessToken(Secret("new")))
        #expect(adapter.loadPending() == nil)
        let record = try #require(try store.load(for: server).credentials)
        #expect(record.deviceName == "dev-1")
        #expect(record.issuedAt == UTCTimestamp(secondsSinceEpoch: 1_800_000_000))
        // Credentials for another server are not this one's.
        let other = StoredCredentialsAdapter(store: store, server: ServerEndpoint(host: "elsewhere", port: 1883), deviceName: "dev-1", logger: Logger(label: "test"))
        #expect(other.load() == nil)
    }
}
