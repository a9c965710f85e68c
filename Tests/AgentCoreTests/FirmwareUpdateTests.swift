import AgentCore
import TBChecksum
import TBJSON
import Testing

@Suite("Firmware update: the package's checks and the hand-over to the root step")
struct FirmwareUpdateTests {
    static let package = OTAPackage(title: "tb-agent", version: "2.0", size: 100, algorithm: .sha256, checksum: String(repeating: "a", count: 64))

    static func elf(machine: UInt16, bits64: Bool = true) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: 64)
        header[0...3] = [0x7F, 0x45, 0x4C, 0x46]
        header[4] = bits64 ? 2 : 1
        header[5] = 1
        header[18] = UInt8(machine & 0xFF)
        header[19] = UInt8(machine >> 8)
        return header
    }

    @Test("a program for this machine passes; another architecture, a .deb, bytes and a 32-bit build are refused, naming what to assign")
    func headers() {
        #expect(FirmwareImage.headerProblem(Self.elf(machine: FirmwareImage.hostMachine), package: Self.package) == nil)
        let other: UInt16 = FirmwareImage.hostMachine == 62 ? 183 : 62
        let arch = FirmwareImage.headerProblem(Self.elf(machine: other), package: Self.package) ?? ""
        #expect(arch.contains("is a program for \(FirmwareImage.machineName(other)), but this board runs \(FirmwareImage.machineName(FirmwareImage.hostMachine))"), "\(arch)")
        let deb = FirmwareImage.headerProblem(Array("!<arch>\ndebian-binary   ".utf8), package: Self.package) ?? ""
        #expect(deb.contains("Debian package") && deb.contains("usr/bin/tb-agent"), "\(deb)")
        let bytes = FirmwareImage.headerProblem([1, 2, 3], package: Self.package) ?? ""
        #expect(bytes.contains("is not a program (no ELF header)"), "\(bytes)")
        let narrow = FirmwareImage.headerProblem(Self.elf(machine: FirmwareImage.hostMachine, bits64: false), package: Self.package) ?? ""
        #expect(narrow.contains("32-bit program"), "\(narrow)")
    }

    @Test("--version: the first line is the version, the second names libgpiod; a failure, another program or another version is refused")
    func versions() {
        #expect(FirmwareImage.reportedVersion(Array("2.0\nlibgpiod 2.2.1 (v2 API)\n".utf8)) == "2.0")
        #expect(FirmwareImage.reportedVersion(Array("2.0\n".utf8)) == nil)
        #expect(FirmwareImage.reportedVersion(Array("Python 3.11\nlibgpiod\n".utf8)) == nil)
        #expect(FirmwareImage.versionProblem(output: Array("2.0\nlibgpiod x\n".utf8), exited: "exit status 0", succeeded: true, package: Self.package) == nil)
        let other = FirmwareImage.versionProblem(output: Array("1.9\nlibgpiod x\n".utf8), exited: "exit status 0", succeeded: true, package: Self.package) ?? ""
        #expect(other.contains("says it is tb-agent 1.9, not 2.0"), "\(other)")
        let failed = FirmwareImage.versionProblem(output: Array("error while loading shared libraries: libgpiod.so.3\n".utf8), exited: "exit status 127", succeeded: false, package: Self.package) ?? ""
        #expect(failed.contains("does not run on this board (`--version` ended with exit status 127: error while loading shared libraries"), "\(failed)")
    }

    @Test("tickets and outcomes read back what was written; damage reads as nothing")
    func records() throws {
        let ticket = UpdateTicket(package: Self.package, from: "1.0")
        #expect(UpdateTicket(json: try JSONValue.parse(ticket.json.serializedBytes)) == ticket)
        let outcome = UpdateOutcome(state: .failed, package: Self.package, error: "rolled back")
        #expect(UpdateOutcome(json: try JSONValue.parse(outcome.json.serializedBytes)) == outcome)
        #expect(UpdateOutcome(json: .object([("state", .string("MAYBE"))])) == nil)
        #expect(UpdateTicket(json: .object([("from", .string("1.0"))])) == nil)
    }

    /// A download to the end, verified: what comes after.
    static func verified() -> (OTADownload, [OTADownload.Action]) {
        var machine = OTADownloadTests.awaitingFirstChunk()
        let actions = OTADownloadTests.serve(&machine, [.request(topic: "v2/fw/request/2/chunk/0", payload: [])])
        return (machine, actions)
    }

    @Test("verified, then checked off the loop: a good package is handed over (the ticket) and reported UPDATING; a bad one FAILED and removed")
    func handOver() {
        var (machine, actions) = Self.verified()
        let inspect = actions.compactMap { if case .inspect(let p) = $0 { return p } else { return nil } }
        #expect(inspect.count == 1)
        let good = machine.inspected(problem: nil)
        #expect(good.contains { if case .handOver(let t) = $0 { return t.from == "1.0" && t.package.version == "2.0" } else { return false } })
        #expect(OTADownloadTests.states(good) == ["UPDATING"])
        #expect(machine.phase == .updating(inspect[0]))
        // Another assignment waits for the root step's outcome.
        #expect(machine.attributes(OTADownloadTests.attributes(version: "3.0"), now: .seconds(2)).isEmpty)

        var (other, _) = Self.verified()
        let bad = other.inspected(problem: "not a program")
        #expect(OTADownloadTests.states(bad) == ["FAILED"])
        #expect(OTADownloadTests.error(bad) == "not a program")
        #expect(bad.contains(.discard))
    }

    @Test("a rollback's FAILED outcome is reported on connect and the package is not downloaded again while it stays assigned")
    func rolledBack() {
        let package = OTAPackage(title: "tb-agent", version: "2.0", size: 100, algorithm: .sha256, checksum: ChecksumAlgorithm.sha256.hex(of: OTADownloadTests.data))
        var machine = OTADownload(settings: OTADownloadTests.settings(), outcome: UpdateOutcome(state: .failed, package: package, error: "rolled back to tb-agent 1.0: why"))
        let connected = machine.connected(now: .zero)
        #expect(OTADownloadTests.states(connected) == ["FAILED"])
        #expect(OTADownloadTests.error(connected) == "rolled back to tb-agent 1.0: why")
        #expect(OTADownloadTests.requests(machine.attributes(OTADownloadTests.attributes(), now: .zero)).isEmpty)
        // A new package is downloaded.
        #expect(OTADownloadTests.requests(machine.attributes(OTADownloadTests.attributes(version: "2.1"), now: .zero)).count == 1)
    }

    @Test("UPDATED is reported once, by the version installed, and then forgotten; an outcome for another version is stale")
    func updated() {
        let package = OTAPackage(title: "tb-agent", version: "1.0", size: 100, algorithm: .sha256, checksum: String(repeating: "b", count: 64))
        var machine = OTADownload(settings: OTADownloadTests.settings(), outcome: UpdateOutcome(state: .updated, package: package))
        let first = machine.connected(now: .zero)
        #expect(OTADownloadTests.states(first) == ["UPDATED"])
        #expect(first.contains(.forgetOutcome))
        machine.disconnected()
        #expect(OTADownloadTests.states(machine.connected(now: .seconds(1))).isEmpty)

        var running = OTADownload(settings: OTADownloadTests.settings())
        _ = running.connected(now: .zero)
        let seen = running.outcome(UpdateOutcome(state: .updated, package: package))
        #expect(OTADownloadTests.states(seen) == ["UPDATED"] && seen.contains(.forgetOutcome))

        var stale = OTADownload(settings: OTADownloadTests.settings(), outcome: UpdateOutcome(state: .updated, package: Self.package))
        #expect(OTADownloadTests.states(stale.connected(now: .zero)).isEmpty)
    }

    @Test("a package verified before a restart and not handed over is checked again on connect; one handed over stays UPDATING")
    func afterRestart() {
        let package = OTAPackage(title: "tb-agent", version: "2.0", size: 100, algorithm: .sha256, checksum: ChecksumAlgorithm.sha256.hex(of: OTADownloadTests.data))
        let restored = OTADownload.Restored(package: package, durableBytes: 100, checksum: Checksum(.sha256), verified: true)
        var again = OTADownload(settings: OTADownloadTests.settings(), restored: restored)
        #expect(again.connected(now: .zero).contains(.inspect(package)))
        var handed = OTADownload(settings: OTADownloadTests.settings(), restored: restored, handedOver: true)
        let actions = handed.connected(now: .zero)
        #expect(OTADownloadTests.states(actions) == ["UPDATING"])
        #expect(!actions.contains(.inspect(package)))
    }
}
