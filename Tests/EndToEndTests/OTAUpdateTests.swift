import AgentTestSupport
import Foundation
import TBJSON
import Testing

/// Issue 13, applying a package: a real tb-agent installed in a folder of the test's, kept running by a loop that
/// restarts it when it exits (systemd's `Restart=always`), gets a package from tb-sim, checks it and leaves the
/// ticket; the test runs `tb-agent apply-update` as `tb-agent-update.path` would, with `[ota] restart_command`
/// killing the agent so that the loop starts the installed binary.
@Suite("End to end: OTA update", .serialized)
struct OTAUpdateEndToEndTests {
    /// The debug tb-agent with another version stamped into it (`CAgentVersion`: `TB-AGENT-VERSION=` in 64 bytes).
    static func stamped(_ version: String, in directory: URL) throws -> URL {
        var bytes = [UInt8](try Data(contentsOf: TestSupport.binary("tb-agent")))
        let marker = Array("TB-AGENT-VERSION=".utf8)
        let current = marker + Array("0.1.0".utf8) + [0]
        let start = try #require(Self.find(current, in: bytes), "no version stamp in the tb-agent binary")
        let replacement = marker + Array(version.utf8)
        try #require(replacement.count < 64)
        bytes.replaceSubrange(start..<(start + 64), with: replacement + [UInt8](repeating: 0, count: 64 - replacement.count))
        let url = directory.appendingPathComponent("tb-agent-\(version)")
        try Data(bytes).write(to: url)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        return url
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard let first = needle.first, haystack.count >= needle.count else { return nil }
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == first && Array(haystack[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }

    /// A small program for this machine that says it is tb-agent `version` and, asked to run, exits 70 at once: a
    /// release that does not start.
    static func brokenRelease(_ version: String, in directory: URL) throws -> URL {
        let source = directory.appendingPathComponent("broken.c")
        try """
        #include <stdio.h>
        #include <string.h>
        int main(int argc, char **argv) {
            if (argc > 1 && strcmp(argv[1], "--version") == 0) { printf("\(version)\\nlibgpiod none\\n"); return 0; }
            fprintf(stderr, "broken release: cannot start\\n");
            return 70;
        }
        """.write(to: source, atomically: true, encoding: .utf8)
        let output = directory.appendingPathComponent("broken-\(version)")
        let clang = ["/opt/swift/usr/bin/clang", "/usr/bin/clang", "/usr/bin/cc", "/usr/bin/gcc"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let compiler = try #require(clang, "no C compiler")
        let result = try TestSupport.run(URL(fileURLWithPath: compiler), ["-O1", "-o", output.path, source.path])
        try #require(result.status == 0, "cc: \(result.stderr)")
        return output
    }

    /// The installed agent (`bin/tb-agent`, a copy of this build) kept running by a shell loop.
    final class Installation: Sendable {
        let directory: URL
        let board: BoardCopy
        let supervisor: ChildProcess
        var binary: URL { self.directory.appendingPathComponent("bin/tb-agent") }
        var pidFile: URL { self.directory.appendingPathComponent("agent.pid") }
        var backup: URL { self.directory.appendingPathComponent("backup") }

        init(_ sim: E2ESim, window: String = "30s") throws {
            self.directory = try TestSupport.makeTemporaryDirectory("ota-install")
            let bin = self.directory.appendingPathComponent("bin")
            try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: TestSupport.binary("tb-agent"), to: bin.appendingPathComponent("tb-agent"))
            self.board = try BoardCopy()
            let pidFile = self.directory.appendingPathComponent("agent.pid").path
            try self.board.writeConfig(port: sim.mqttPort, interval: "1s", sensors: BoardCopy.sensors(["cpu_temperature"]), extra: """
                [ota]
                chunk_size = "60KiB"
                confirm_after = "2s"
                window = "\(window)"
                restart_command = ["/bin/sh", "-c", "kill $(cat \(pidFile))"]
                backup_directory = "\(self.directory.appendingPathComponent("backup").path)"
                """)
            let loop = """
                while :; do "$0" run --config "$1" --log-level debug & echo $! > "$2"; wait $!; sleep 0.3; done
                """
            self.supervisor = try ChildProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", loop, bin.appendingPathComponent("tb-agent").path, self.board.configURL.path, pidFile])
        }

        var log: String { self.supervisor.stderr + self.supervisor.stdout }

        func stop() {
            self.supervisor.signal(SIGKILL)
            if let text = try? String(contentsOf: self.pidFile, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                kill(pid, SIGTERM)
                _ = TestSupport.waitUntil(timeout: .seconds(10)) { kill(pid, 0) != 0 }
                kill(pid, SIGKILL)
            }
        }

        /// `tb-agent apply-update` of the installed binary, as tb-agent-update.service runs it.
        func applyUpdate() async throws -> CommandResult {
            let binary = self.binary, config = self.board.configURL.path
            return try await offPool { try TestSupport.run(binary, ["apply-update", "--config", config], timeout: .seconds(120)) }
        }

        func version() throws -> String {
            let result = try TestSupport.run(self.binary, ["--version"])
            return result.stdout.split(separator: "\n").first.map(String.init) ?? ""
        }
    }

    static func upload(_ sim: E2ESim, _ file: URL, version: String, algorithm: String = "CRC32") async throws {
        let data = try Data(contentsOf: file)
        let body = #"{"title":"tb-agent","version":"\#(version)","type":"FIRMWARE","checksumAlgorithm":"\#(algorithm)","data":"\#(data.base64EncodedString())"}"#
        let upload = try await sim.control("POST", "/otaPackages", body)
        let id = try #require(upload.body["id"]?.stringValue, "upload: \(upload.status) \(upload.body)")
        let assigned = try await sim.control("POST", "/devices/\(simulatedDeviceName)/firmware", #"{"packageId":"\#(id)"}"#)
        try #require(assigned.status == 200, "assignment: \(assigned.body)")
    }

    static func online(_ sim: E2ESim, _ installation: Installation) async throws {
        try #require(await eventually(.seconds(40)) { !sim.readings().isEmpty }, "no telemetry; log:\n\(installation.log.suffix(3000))")
    }

    /// The `current_fw_version` values the device reported, in order.
    static func reportedVersions(_ sim: E2ESim) -> [String] {
        sim.readings(of: "current_fw_version").compactMap { $0.value.stringValue }
    }

    @Test("a new release is checked, installed by apply-update, restarted, confirmed after staying online, and reported UPDATED; the previous binary is removed")
    func updateComesOnline() async throws {
        let sim = try await E2ESim.start()
        let installation = try Installation(sim)
        defer { installation.stop() }
        let release = try Self.stamped("0.2.0-e2e", in: installation.directory)
        try await Self.online(sim, installation)
        try await Self.upload(sim, release, version: "0.2.0-e2e")
        let ready = installation.board.stateDirectory.appendingPathComponent("ota/ready")
        try #require(await eventually(.seconds(120)) { FileManager.default.fileExists(atPath: ready.path) },
                     "no ready ticket: log:\n\(installation.log.suffix(4000))")
        // The agent leaves the ticket, then reports UPDATING: tb-sim has it a moment after the file exists.
        #expect(await eventuallyAsync(.seconds(10)) { (try? await OTADownloadEndToEndTests.states(sim))?.last == "UPDATING" })

        let result = try await installation.applyUpdate()
        #expect(result.status == 0, "apply-update: \(result.stdout) \(result.stderr)\nlog:\n\(installation.log.suffix(4000))")
        #expect(result.stdout.contains("confirmed: the update is final"), "\(result.stdout)")
        #expect(try installation.version() == "0.2.0-e2e")
        #expect(try Data(contentsOf: installation.binary) == Data(contentsOf: release))
        #expect(!FileManager.default.fileExists(atPath: installation.backup.appendingPathComponent("tb-agent.previous").path), "the previous version was kept after the update was final")

        try #require(await eventuallyAsync(.seconds(20)) { (try? await OTADownloadEndToEndTests.states(sim))?.last == "UPDATED" },
                     "no UPDATED: log:\n\(installation.log.suffix(4000))")
        let states = try await OTADownloadEndToEndTests.states(sim)
        #expect(Array(states.suffix(4)) == ["DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"])
        #expect(!states.contains("FAILED"))
        #expect(Self.reportedVersions(sim).first == "0.1.0")
        #expect(Self.reportedVersions(sim).last == "0.2.0-e2e")
        let ota = installation.board.stateDirectory.appendingPathComponent("ota")
        for name in ["ready", "trial", "confirmed", "package.part", "package.json"] {
            #expect(!FileManager.default.fileExists(atPath: ota.appendingPathComponent(name).path), "\(name) left behind")
        }
        // The package stays assigned: the new version runs it and downloads nothing more.
        let chunks = OTADownloadEndToEndTests.chunks(sim).count
        await pause(.seconds(3))
        #expect(OTADownloadEndToEndTests.chunks(sim).count == chunks)
        await sim.stop()
    }

    @Test("a release that does not start is rolled back when the window ends: the previous binary is back, running, and FAILED says why; the package is not downloaded again")
    func brokenReleaseIsRolledBack() async throws {
        let sim = try await E2ESim.start()
        let installation = try Installation(sim, window: "8s")
        defer { installation.stop() }
        let original = try Data(contentsOf: installation.binary)
        let release = try Self.brokenRelease("0.3.0", in: installation.directory)
        try await Self.online(sim, installation)
        try await Self.upload(sim, release, version: "0.3.0", algorithm: "SHA256")
        let ready = installation.board.stateDirectory.appendingPathComponent("ota/ready")
        try #require(await eventually(.seconds(60)) { FileManager.default.fileExists(atPath: ready.path) },
                     "no ready ticket: log:\n\(installation.log.suffix(4000))")

        let result = try await installation.applyUpdate()
        #expect(result.status == 1, "apply-update: \(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("rolled back to tb-agent 0.1.0"), "\(result.stdout)")
        #expect(try Data(contentsOf: installation.binary) == original, "the previous binary is not back")
        #expect(installation.log.contains("broken release: cannot start"), "the broken release never ran")

        try #require(await eventuallyAsync(.seconds(30)) { (try? await OTADownloadEndToEndTests.states(sim))?.last == "FAILED" },
                     "no FAILED: log:\n\(installation.log.suffix(4000))")
        let error = try await OTADownloadEndToEndTests.lastError(sim)
        #expect(error.hasPrefix("rolled back to tb-agent 0.1.0: tb-agent 0.3.0 did not stay online"), "fw_error: \(error)")
        // The previous version is online again and does not fetch the failed package once more.
        let before = sim.readings().count
        try #require(await eventually(.seconds(20)) { sim.readings().count > before + 2 }, "the previous version is not online")
        let chunks = OTADownloadEndToEndTests.chunks(sim).count
        await pause(.seconds(3))
        #expect(OTADownloadEndToEndTests.chunks(sim).count == chunks, "the failed package was downloaded again")
        #expect(Self.reportedVersions(sim).last == "0.1.0")
        await sim.stop()
    }

    @Test("checked before anything is replaced: a program for another architecture, and one whose --version is not the package's, are FAILED with no ticket", arguments: ["architecture", "version"])
    func refusedBeforeInstalling(_ kind: String) async throws {
        let sim = try await E2ESim.start()
        let installation = try Installation(sim)
        defer { installation.stop() }
        var release = try Self.brokenRelease("0.4.0", in: installation.directory)
        if kind == "architecture" {
            // e_machine (offset 18) says aarch64, or x86-64 on an aarch64 machine.
            var bytes = [UInt8](try Data(contentsOf: release))
            let other: UInt16 = bytes[18] == 62 ? 183 : 62
            bytes[18] = UInt8(other & 0xFF)
            bytes[19] = UInt8(other >> 8)
            release = installation.directory.appendingPathComponent("other-arch")
            try Data(bytes).write(to: release)
        }
        try await Self.online(sim, installation)
        try await Self.upload(sim, release, version: kind == "architecture" ? "0.4.0" : "0.5.0")
        try #require(await eventuallyAsync(.seconds(60)) { (try? await OTADownloadEndToEndTests.states(sim))?.last == "FAILED" },
                     "no FAILED: log:\n\(installation.log.suffix(4000))")
        let states = try await OTADownloadEndToEndTests.states(sim)
        #expect(Array(states.suffix(3)) == ["DOWNLOADED", "VERIFIED", "FAILED"])
        let error = try await OTADownloadEndToEndTests.lastError(sim)
        if kind == "architecture" {
            #expect(error.contains("is a program for") && error.contains("but this board runs"), "fw_error: \(error)")
        } else {
            #expect(error.contains("says it is tb-agent 0.4.0, not 0.5.0"), "fw_error: \(error)")
        }
        let ota = installation.board.stateDirectory.appendingPathComponent("ota")
        #expect(!FileManager.default.fileExists(atPath: ota.appendingPathComponent("ready").path))
        let result = try await installation.applyUpdate()
        #expect(result.status == 0 && result.stdout.contains("nothing to install"), "\(result.stdout) \(result.stderr)")
        #expect(try installation.version() == "0.1.0")
        await sim.stop()
    }

    @Test("a release as a .deb (the stamped binary in a package built by dpkg-deb) is checked, its binary taken out and run, and handed over: the ticket, UPDATING")
    func debianReleaseIsHandedOver() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/dpkg-deb"), "dpkg-deb is missing")
        let sim = try await E2ESim.start()
        let installation = try Installation(sim)
        defer { installation.stop() }
        let binary = try Self.stamped("0.6.0", in: installation.directory)
        let tree = installation.directory.appendingPathComponent("deb-tree")
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("DEBIAN"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("usr/bin"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: binary, to: tree.appendingPathComponent("usr/bin/tb-agent"))
        let architecture = try TestSupport.run(URL(fileURLWithPath: "/usr/bin/dpkg"), ["--print-architecture"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try """
            Package: tb-agent
            Version: 0.6.0+deb12
            Architecture: \(architecture)
            Maintainer: tests <tests@example.org>
            Description: tb-agent, a test release

            """.write(to: tree.appendingPathComponent("DEBIAN/control"), atomically: true, encoding: .utf8)
        let deb = installation.directory.appendingPathComponent("tb-agent_0.6.0+deb12.deb")
        let built = try TestSupport.run(URL(fileURLWithPath: "/usr/bin/dpkg-deb"), ["--root-owner-group", "-Zgzip", "--build", tree.path, deb.path])
        try #require(built.status == 0, "dpkg-deb: \(built.stderr)")
        try await Self.online(sim, installation)
        try await Self.upload(sim, deb, version: "0.6.0", algorithm: "SHA256")
        let ota = installation.board.stateDirectory.appendingPathComponent("ota")
        try #require(await eventually(.seconds(120)) { FileManager.default.fileExists(atPath: ota.appendingPathComponent("ready").path) },
                     "no ready ticket: log:\n\(installation.log.suffix(4000))")
        try #require(await eventuallyAsync(.seconds(10)) { (try? await OTADownloadEndToEndTests.states(sim))?.last == "UPDATING" })
        let states = try await OTADownloadEndToEndTests.states(sim)
        #expect(Array(states.suffix(3)) == ["DOWNLOADED", "VERIFIED", "UPDATING"], "\(states)")
        #expect(try Data(contentsOf: ota.appendingPathComponent("package.part")) == Data(contentsOf: deb), "the part is not the .deb")
        #expect(!FileManager.default.fileExists(atPath: ota.appendingPathComponent("package.check").path), "the binary taken out was left")
        #expect(try installation.version() == "0.1.0", "something was installed before the root step")
        await sim.stop()
    }

    static func softwareStates(_ sim: E2ESim) async throws -> [String] {
        let body = try await sim.control("GET", "/devices/\(simulatedDeviceName)/fwStates").body
        return body["software"]?["states"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    static func uploadSoftware(_ sim: E2ESim, _ bytes: [UInt8], version: String) async throws {
        let body = #"{"title":"weather-app","version":"\#(version)","type":"SOFTWARE","checksumAlgorithm":"SHA256","data":"\#(Data(bytes).base64EncodedString())"}"#
        let upload = try await sim.control("POST", "/otaPackages", body)
        let id = try #require(upload.body["id"]?.stringValue, "upload: \(upload.status) \(upload.body)")
        let assigned = try await sim.control("POST", "/devices/\(simulatedDeviceName)/software", #"{"packageId":"\#(id)"}"#)
        try #require(assigned.status == 200, "assignment: \(assigned.body)")
    }

    @Test("a software package comes on v2/sw, is installed by [ota.software] command with its path, and reported UPDATED with current_sw_*; a failing command is FAILED with what it said")
    func softwarePackage() async throws {
        let sim = try await E2ESim.start()
        let board = try BoardCopy()
        let destination = board.directory.appendingPathComponent("installed-app")
        let script = #"if grep -q broken "$0"; then echo 'cannot install: broken' >&2; exit 3; fi; cp "$0" \#(destination.path)"#
        try board.writeConfig(port: sim.mqttPort, interval: "1s", sensors: BoardCopy.sensors(["cpu_temperature"]), extra: """
            [ota]
            chunk_size = "4KiB"
            [ota.software]
            command = ["/bin/sh", "-c", "\(script.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))"]
            """)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            let (agent, _) = try await ReprovisionTests.online(board, sim, &agents)
            let app: [UInt8] = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 13) } + Array("weather-app 3.1-app".utf8)
            try await Self.uploadSoftware(sim, app, version: "3.1-app")
            try #require(await eventuallyAsync(.seconds(60)) { (try? await Self.softwareStates(sim))?.last == "UPDATED" },
                         "no UPDATED: \(agent.log.suffix(4000))")
            let states = try await Self.softwareStates(sim)
            #expect(Array(states.suffix(5)) == ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"] || Array(states.suffix(4)) == ["DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"], "\(states)")
            #expect(try Data(contentsOf: destination) == Data(app), "the command did not get the package's path")
            #expect(!sim.events("ota_chunk").isEmpty && sim.events("ota_chunk").allSatisfy { $0["type"]?.stringValue == "SOFTWARE" })
            #expect(sim.readings(of: "current_sw_version").last?.value.stringValue == "3.1-app", "\(sim.readings(of: "current_sw_version")) \(sim.readings(of: "sw_state"))")
            let firmwareStates = try await OTADownloadEndToEndTests.states(sim)
            #expect(firmwareStates.isEmpty, "a software package moved the firmware's state: \(firmwareStates)")

            try await Self.uploadSoftware(sim, Array("broken package".utf8), version: "4.0-app")
            try #require(await eventuallyAsync(.seconds(60)) { (try? await Self.softwareStates(sim))?.last == "FAILED" },
                         "no FAILED: \(agent.log.suffix(4000))")
            let history = try await sim.control("GET", "/devices/\(simulatedDeviceName)/fwStates").body["software"]?["history"]?.arrayValue ?? []
            let error = history.compactMap { $0["values"]?["sw_error"]?.stringValue }.last ?? ""
            #expect(error.contains("ended with exit status 3: cannot install: broken"), "sw_error: \(error)")
            #expect(try Data(contentsOf: destination) == Data(app), "a failed install changed what was installed")
            #expect(agent.isRunning)
            let status = try await agent.status()
            #expect(status["software"]?["current"]?.stringValue == "weather-app 3.1-app", "\(status)")
        }
    }
}
