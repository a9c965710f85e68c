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
        #expect(FirmwareImage.format(Array("!<arch>\ndebian-binary   ".utf8)) == .debian)
        #expect(FirmwareImage.format(Self.elf(machine: FirmwareImage.hostMachine)) == .program)
        #expect(FirmwareImage.format([0x21]) == .program)
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

    @Test("a .deb's control fields: tb-agent for this board's architecture, its Debian version the announced one or that with a build suffix; anything else refused with the fix")
    func debianFields() {
        let arch = FirmwareImage.hostDebianArchitecture
        func fields(_ name: String = "tb-agent", _ version: String = "2.0", _ architecture: String? = nil) -> [UInt8] {
            Array("Package: \(name)\nVersion: \(version)\nArchitecture: \(architecture ?? arch)\n".utf8)
        }
        func problem(_ output: [UInt8], succeeded: Bool = true) -> String? {
            FirmwareImage.debianProblem(fields: output, exited: succeeded ? "exit status 0" : "exit status 2", succeeded: succeeded, package: Self.package)
        }
        #expect(FirmwareImage.debianFields(fields()) == ["package": "tb-agent", "version": "2.0", "architecture": arch])
        for version in ["2.0", "2.0+deb13", "2.0-1", "2.0~rc1"] { #expect(problem(fields("tb-agent", version)) == nil, "\(version)") }
        let other = problem(fields("mosquitto")) ?? ""
        #expect(other.contains("is the Debian package mosquitto, not tb-agent") && other.contains("[ota.software] command"), "\(other)")
        let foreign = arch == "arm64" ? "amd64" : "arm64"
        let wrongArch = problem(fields("tb-agent", "2.0", foreign)) ?? ""
        #expect(wrongArch.contains("is a .deb for \(foreign), but this board is \(arch): assign the \(arch) package"), "\(wrongArch)")
        for version in ["2.01", "1.9", "20"] {
            let mismatch = problem(fields("tb-agent", version + "+deb13")) ?? ""
            #expect(mismatch.contains("holds tb-agent \(version)+deb13, but its version in ThingsBoard is 2.0: upload it again with the agent's version \(version)"), "\(mismatch)")
        }
        let missing = problem(Array("Package: tb-agent\n".utf8)) ?? ""
        #expect(missing.contains("without Package, Version and Architecture"), "\(missing)")
        let unreadable = problem(Array("dpkg-deb: error: 'x' is not a Debian format archive\n".utf8), succeeded: false) ?? ""
        #expect(unreadable.contains("is not a readable Debian package (dpkg-deb ended with exit status 2: dpkg-deb: error"), "\(unreadable)")
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

@Suite("Software packages (sw_*): the same download, installed by a command")
struct SoftwarePackageTests {
    static func settings(title: String = "", version: String = "") -> OTADownload.Settings {
        var s = OTADownloadTests.settings()
        s.kind = .software
        s.title = title
        s.version = version
        return s
    }

    static func attributes(title: String = "weather-app", version: String = "3") -> JSONValue {
        .object([("shared", .object([
            ("sw_title", .string(title)), ("sw_version", .string(version)), ("sw_size", .integer(100)),
            ("sw_checksum_algorithm", .string("SHA256")), ("sw_checksum", .string(ChecksumAlgorithm.sha256.hex(of: OTADownloadTests.data))),
            ("fw_title", .string("tb-agent")), ("fw_version", .string("9.9")),
        ]))])
    }

    static func states(_ actions: [OTADownload.Action]) -> [String] {
        actions.compactMap { if case .report(let json) = $0 { return json["sw_state"]?.stringValue } else { return nil } }
    }

    /// Answers every software chunk request with the right bytes (on `v2/sw/response/…`) until none is left.
    static func serve(_ machine: inout OTADownload, _ first: [OTADownload.Action]) -> [OTADownload.Action] {
        var all = first
        var next = first
        while let topic = OTADownloadTests.requests(next).last {
            machine.requestSent(now: .seconds(1))
            let parts = topic.split(separator: "/")
            let index = Int(parts[5])!
            let start = min(index * 32, OTADownloadTests.data.count)
            let payload = Array(OTADownloadTests.data[start..<min(start + 32, OTADownloadTests.data.count)])
            next = machine.chunk(topic: "v2/sw/response/\(parts[3])/chunk/\(index)", payload: payload, now: .seconds(1))
            all += next
        }
        return all
    }

    @Test("sw_* keys and v2/sw topics; any title; verified, then UPDATING while the command runs, then UPDATED with current_sw_*")
    func installs() {
        var machine = OTADownload(settings: Self.settings())
        let connected = machine.connected(now: .zero)
        guard case .report(let first) = connected.first else { Issue.record("no report"); return }
        #expect(first["current_sw_title"]?.stringValue == "" && first["current_fw_title"] == nil)
        let start = machine.attributes(Self.attributes(), now: .zero)
        #expect(OTADownloadTests.requests(start) == ["v2/sw/request/2/chunk/0"], "the fw_* keys are the firmware download's")
        let all = Self.serve(&machine, start)
        let served = all.compactMap { if case .request(let topic, _) = $0 { return topic } else { return nil } }
        #expect(served.allSatisfy { $0.hasPrefix("v2/sw/request/") })
        #expect(Array(Self.states(all).suffix(3)) == ["DOWNLOADED", "VERIFIED", "UPDATING"])
        #expect(all.contains { if case .inspect = $0 { return true } else { return false } })
        let done = machine.inspected(problem: nil)
        #expect(Self.states(done) == ["UPDATED"])
        #expect(done.contains { if case .installed(let p) = $0 { return p.title == "weather-app" && p.version == "3" } else { return false } })
        guard case .report(let updated) = done.first(where: { if case .report = $0 { return true } else { return false } }) else { return }
        #expect(updated["current_sw_title"]?.stringValue == "weather-app" && updated["current_sw_version"]?.stringValue == "3")
        #expect(machine.current == ("weather-app", "3"))
        // The same assignment again (a reconnect): installed, nothing to do.
        #expect(OTADownloadTests.requests(machine.attributes(Self.attributes(), now: .seconds(5))).isEmpty)
    }

    @Test("the command failed: FAILED with what it said, the part removed; installed before a restart: nothing to do")
    func failsAndRemembers() {
        var machine = OTADownload(settings: Self.settings())
        _ = machine.connected(now: .zero)
        let first = machine.attributes(Self.attributes(), now: .zero)
        _ = Self.serve(&machine, first)
        let failed = machine.inspected(problem: "install-app ended with exit status 3: disk full")
        #expect(Self.states(failed) == ["FAILED"] && failed.contains(.discard))
        var restarted = OTADownload(settings: Self.settings(title: "weather-app", version: "3"))
        _ = restarted.connected(now: .zero)
        #expect(restarted.attributes(Self.attributes(), now: .zero).isEmpty)
    }

    @Test("without [ota.software] command every software package is FAILED with the fix, nothing downloaded")
    func refusedWithoutCommand() {
        var settings = Self.settings()
        settings.refusal = "this agent has no [ota.software] command"
        var machine = OTADownload(settings: settings)
        _ = machine.connected(now: .zero)
        let actions = machine.attributes(Self.attributes(), now: .zero)
        #expect(Self.states(actions) == ["FAILED"])
        #expect(OTADownloadTests.requests(actions).isEmpty)
        let error = actions.lazy.compactMap { if case .report(let j) = $0 { return j["sw_error"]?.stringValue } else { return nil } }.first
        #expect(error == "the package weather-app 3 cannot be installed: this agent has no [ota.software] command")
    }
}
