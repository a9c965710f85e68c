import AgentCore
import AgentPlatform
import AgentTestSupport
import Foundation
import Testing

/// The fixture system roots of real boards (Tests/Fixtures/sysroots), through the disk reader and the binary.
@Suite struct HardwareIdentityFixtureTests {
    static func sysroot(_ name: String) -> String {
        TestSupport.packageRoot.appendingPathComponent("Tests/Fixtures/sysroots/\(name)").path
    }

    /// (fixture, template, identity_sources or nil for the default, expected name or nil for an error)
    static let cases: [(String, String, [IdentitySource]?, String?)] = [
        ("raspberrypi-4b", "{id}", nil, "10000000abcdef12"),
        ("raspberrypi-4b", "{serial}", nil, "10000000abcdef12"),
        ("raspberrypi-4b", "{mac}", nil, "dca632123456"),
        ("raspberrypi-4b", "pi-{mac}", nil, "pi-dca632123456"),
        ("raspberrypi-4b", "{machine_id}", nil, "8f3e2a1b4c5d6e7f8091a2b3c4d5e6f7"),
        ("raspberrypi-4b", "{hostname}", nil, "raspberrypi"),
        ("raspberrypi-4b", "{id}", [.mac, .serial], "dca632123456"),
        ("raspberrypi-3b-plus", "{id}", nil, "00000000a1b2c3d4"),
        ("raspberrypi-3b-plus", "pi-{mac}", nil, "pi-b827eba1b2c3"),
        ("raspberrypi-3b-plus", "{hostname}-{serial}", nil, "pi3-00000000a1b2c3d4"),
        ("raspberrypi-5", "{id}", nil, "0c0ffee5a1b2c3d4"),
        ("raspberrypi-5", "{mac}", nil, "2ccf670a0b0c"),
        ("raspberrypi-5", "{id}", [.machineId, .serial], "5f5e5d5c5b5a59585756555453525150"),
        ("raspberrypi-zero-2w", "{id}", nil, "00000000deadbeef"),
        ("raspberrypi-zero-2w", "pi-{mac}", nil, "pi-d83add010203"),
        ("raspberrypi-zero-2w", "{machine_id}", nil, nil),
        ("raspberrypi-zero-2w", "{id}", [.machineId, .hostname], "zero2w"),
        ("pc", "{id}", nil, "001ec9aabbcc"),
        ("pc", "{serial}", nil, nil),
        ("pc", "{machine_id}", nil, "a1b2c3d4e5f60718293a4b5c6d7e8f90"),
        ("pc", "{hostname}", nil, "workshop-pc"),
        ("pc", "{id}", [.serial, .machineId, .mac], "a1b2c3d4e5f60718293a4b5c6d7e8f90"),
        ("bridge-docker", "{id}", nil, "000a35010203"),
        ("bridge-docker", "pi-{mac}", nil, "pi-000a35010203"),
        ("bridge-docker", "{machine_id}", nil, nil),
        ("nothing", "{id}", nil, nil),
        ("nothing", "{mac}", nil, nil),
        ("nothing", "static-name", nil, "static-name"),
    ]

    @Test(arguments: Self.cases.indices)
    func derivesTheExpectedName(_ index: Int) throws {
        let (fixture, template, sources, expected) = Self.cases[index]
        var settings = DeviceSettings(nameTemplate: template, sysroot: Self.sysroot(fixture))
        if let sources { settings.identitySources = sources }
        if let expected {
            #expect(try HardwareIdentity.derive(settings).name == expected, "\(fixture) \(template)")
        } else {
            #expect(throws: AgentError.self, "\(fixture) \(template)") { try HardwareIdentity.derive(settings) }
        }
    }

    @Test func factsOfARaspberryPi4() throws {
        let identity = try HardwareIdentity.derive(DeviceSettings(sysroot: Self.sysroot("raspberrypi-4b")))
        #expect(identity.facts.model == "Raspberry Pi 4 Model B Rev 1.4")
        #expect(identity.facts.macInterface == "eth0")
        #expect(identity.source == .serial)
    }

    @Test func modelFallsBackToDMI() throws {
        let identity = try HardwareIdentity.derive(DeviceSettings(sysroot: Self.sysroot("pc")))
        #expect(identity.facts.model == "OptiPlex 7070")
        #expect(identity.source == .mac)
    }

    @Test func missingSysrootIsAnError() {
        #expect(throws: AgentError.self) {
            try HardwareIdentity.derive(DeviceSettings(sysroot: "/nonexistent/tb-agent-sysroot"))
        }
    }

    @Test func diskRootReadsListsAndResolves() throws {
        let root = DiskSystemRoot(path: Self.sysroot("raspberrypi-4b") + "/")
        #expect(String(decoding: try root.readFile("sys/class/net/eth0/address"), as: UTF8.self) == "dc:a6:32:12:34:56\n")
        #expect(try root.listDirectory("sys/class/net") == ["eth0", "lo", "wlan0"])
        #expect(try root.readSymbolicLink("sys/class/net/eth0") == "../../devices/platform/scb/fd580000.ethernet/net/eth0")
        #expect(try root.readSymbolicLink("etc/hostname") == nil)
        #expect(try root.resolvedPath("sys/class/net/lo") == "sys/devices/virtual/net/lo")
        #expect(throws: SystemRootError(path: "etc/nothing", reason: .notFound)) { try root.readFile("etc/nothing") }
        #expect(throws: SystemRootError(path: "etc/hostname", reason: .notADirectory)) {
            try root.listDirectory("etc/hostname")
        }
    }
}

/// `tb-agent identity` as a person runs it.
@Suite struct IdentityCommandTests {
    func config(_ text: String) throws -> String {
        let dir = try TestSupport.makeTemporaryDirectory("identity")
        let file = dir.appendingPathComponent("config.toml")
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    @Test(arguments: HardwareIdentityFixtureTests.cases.indices)
    func printsTheNameAloneOnStdout(_ index: Int) throws {
        let (fixture, template, sources, expected) = HardwareIdentityFixtureTests.cases[index]
        var text = "[device]\nsysroot = \"\(HardwareIdentityFixtureTests.sysroot(fixture))\"\nname_template = \"\(template)\"\n"
        if let sources { text += "identity_sources = [\(sources.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))]\n" }
        let result = try TestSupport.tbAgent(["identity", "--config", try self.config(text)])
        if let expected {
            #expect(result.status == 0)
            #expect(result.stdout == expected + "\n")
            #expect(result.stderr.isEmpty)
        } else {
            #expect(result.status != 0)
            #expect(result.stdout.isEmpty)
            #expect(result.stderr.contains("name_template"))
        }
    }

    @Test func explainListsEverySource() throws {
        let path = try self.config("[device]\nsysroot = \"\(HardwareIdentityFixtureTests.sysroot("bridge-docker"))\"\n")
        let result = try TestSupport.tbAgent(["identity", "--config", path, "--explain"])
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "000a35010203")
        for expected in [
            "serial: proc/cpuinfo: skipped, no Serial line",
            "mac: br0: skipped, virtual interface",
            "mac: docker0: skipped, virtual interface",
            "mac: veth3f2a1b0: skipped, virtual interface",
            "mac: lo: skipped, loopback",
            "mac: eth0: found \"000a35010203\"",
            "machine_id: etc/machine-id: skipped, not yet initialized",
            "hostname: etc/hostname: skipped, not found",
            "model: sys/firmware/devicetree/base/model: \"Example ARM board\"",
            "{id}: mac, the first available of serial, mac, machine_id",
        ] {
            #expect(lines.contains { $0.hasPrefix(expected) }, "missing: \(expected)")
        }
    }

    @Test func missingSourceErrorGoesToStderr() throws {
        let path = try self.config(
            "[device]\nsysroot = \"\(HardwareIdentityFixtureTests.sysroot("pc"))\"\nname_template = \"pi-{serial}\"\n")
        let result = try TestSupport.tbAgent(["identity", "--config", path])
        #expect(result.status == 69)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("{serial}"))
        #expect(result.stderr.contains("proc/cpuinfo (no Serial line)"))
    }

    @Test func invalidConfigurationExits78() throws {
        let path = try self.config("[device]\nname_templat = \"{id}\"\n")
        let result = try TestSupport.tbAgent(["identity", "--config", path])
        #expect(result.status == 78)
        #expect(result.stderr.contains("\(path):2:1: device.name_templat: unknown key"))
    }

    @Test func theSimulatedBoardExampleHasAName() throws {
        let example = TestSupport.packageRoot.appendingPathComponent("board/examples/simulated.toml").path
        let result = try TestSupport.tbAgent(["identity", "--config", example])
        #expect(result.status == 0)
        #expect(result.stdout == "sim-00000000c0ffee42\n")
    }
}
