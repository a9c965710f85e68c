import AgentCore
import Testing

/// A system tree in memory: files, directories implied by their paths, and symbolic links.
struct MemoryRoot: SystemRoot {
    var files: [String: [UInt8]] = [:]
    var links: [String: String] = [:]
    var location: String { "memory" }

    mutating func file(_ path: String, _ text: String) { self.files[path] = Array(text.utf8) }
    mutating func link(_ path: String, _ target: String) { self.links[path] = target }

    /// A network interface as the kernel shows it: a link in sys/class/net to its device folder.
    mutating func interface(
        _ name: String, device: String, address: String, assign: String? = "0", wireless: Bool = false
    ) {
        let folder = "sys/\(device)/net/\(name)"
        self.link("sys/class/net/\(name)", "../../\(device)/net/\(name)")
        self.file("\(folder)/address", address + "\n")
        if let assign { self.file("\(folder)/addr_assign_type", assign + "\n") }
        if wireless { self.file("\(folder)/wireless/.present", "") }
    }

    func readFile(_ path: String) throws(SystemRootError) -> [UInt8] {
        let resolved = try self.resolvedPath(path)
        if let bytes = self.files[resolved] { return bytes }
        throw SystemRootError(path: path, reason: .notFound)
    }

    func listDirectory(_ path: String) throws(SystemRootError) -> [String] {
        let resolved = try self.resolvedPath(path)
        let prefix = resolved.isEmpty ? "" : resolved + "/"
        var names = Set<String>()
        for key in Array(self.files.keys) + Array(self.links.keys) where key.hasPrefix(prefix) {
            if let first = key.dropFirst(prefix.count).split(separator: "/").first { names.insert(String(first)) }
        }
        if names.isEmpty { throw SystemRootError(path: path, reason: .notFound) }
        return names.sorted()
    }

    func readSymbolicLink(_ path: String) throws(SystemRootError) -> String? {
        let clean = SystemPath.components(path).joined(separator: "/")
        if let target = self.links[clean] { return target }
        if self.files[clean] != nil { return nil }
        if Array(self.files.keys).contains(where: { $0.hasPrefix(clean + "/") })
            || Array(self.links.keys).contains(where: { $0.hasPrefix(clean + "/") })
        {
            return nil
        }
        throw SystemRootError(path: path, reason: .notFound)
    }
}

@Suite struct HardwareIdentityRulesTests {
    func derive(_ root: MemoryRoot, _ template: String = "{id}", sources: [IdentitySource]? = nil) throws(AgentError) -> DerivedIdentity {
        var settings = DeviceSettings(nameTemplate: template)
        if let sources { settings.identitySources = sources }
        return try HardwareIdentityRules.derive(settings, root: root)
    }

    @Test func serialIsLowercasedAndStrippedKeepingLeadingZeros() throws {
        var root = MemoryRoot()
        root.file(HardwareIdentityRules.deviceTreeSerial, " 00000000ABCDEF01\n\0")
        let identity = try self.derive(root)
        #expect(identity.name == "00000000abcdef01")
        #expect(identity.source == .serial)
        #expect(HardwareIdentityRules.normalizeSerial("\t10 00\0") == "1000")
    }

    @Test func allZeroDeviceTreeSerialFallsBackToCpuinfo() throws {
        var root = MemoryRoot()
        root.file(HardwareIdentityRules.deviceTreeSerial, "0000000000000000\0")
        root.file(HardwareIdentityRules.cpuinfo, "processor\t: 0\nSerial\t\t: 10000000CAFE0001\n")
        let identity = try self.derive(root)
        #expect(identity.name == "10000000cafe0001")
        #expect(identity.explanation.contains { $0.contains("all zeros") })
    }

    @Test func allZeroSerialEverywhereIsNoSerial() throws {
        var root = MemoryRoot()
        root.file(HardwareIdentityRules.deviceTreeSerial, "0000000000000000\0")
        root.file(HardwareIdentityRules.cpuinfo, "Serial\t\t: 0000000000000000\n")
        root.file(HardwareIdentityRules.machineIdFile, "0123456789abcdef0123456789abcdef\n")
        let identity = try self.derive(root)
        #expect(identity.facts.serial == nil)
        #expect(identity.source == .machineId)
    }

    @Test func cpuinfoKeysAreCaseSensitive() {
        let x86 = "model\t\t: 158\nmodel name\t: Intel\n"
        #expect(HardwareIdentityRules.cpuinfoField(x86, "Model") == nil)
        #expect(HardwareIdentityRules.cpuinfoField("Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n", "Model")
            == "Raspberry Pi 4 Model B Rev 1.4")
    }

    @Test func wiredComesBeforeWirelessEvenWhenItSortsLater() throws {
        var root = MemoryRoot()
        root.interface("wlan0", device: "devices/platform/mmc", address: "dc:a6:32:00:00:02", wireless: true)
        root.interface("eth1", device: "devices/platform/usb", address: "DC:A6:32:00:00:01")
        root.interface("eth0", device: "devices/platform/scb", address: "dc:a6:32:00:00:03")
        let identity = try self.derive(root, "{mac}")
        #expect(identity.name == "dca632000003")
        #expect(identity.facts.macInterface == "eth0")
    }

    @Test func wirelessIsUsedWhenItIsTheOnlyInterface() throws {
        var root = MemoryRoot()
        root.interface("wlan0", device: "devices/platform/mmc", address: "d8:3a:dd:01:02:03", wireless: true)
        #expect(try self.derive(root, "{mac}").name == "d83add010203")
    }

    @Test func virtualInterfacesAreSkippedWhateverTheirAddress() throws {
        var root = MemoryRoot()
        // A globally administered, permanent-looking address: only the virtual path rules it out.
        root.interface("br0", device: "devices/virtual", address: "00:11:22:33:44:55")
        root.interface("eth0", device: "devices/platform/soc", address: "00:0a:35:01:02:03")
        let identity = try self.derive(root, "{mac}")
        #expect(identity.name == "000a35010203")
        #expect(identity.explanation.contains { $0.hasPrefix("mac: br0: skipped, virtual interface") })
    }

    @Test(arguments: [
        ("02:42:ac:11:00:02", "0", "locally administered"),
        ("01:00:5e:00:00:01", "0", "multicast"),
        ("00:00:00:00:00:00", "0", "all zeros"),
        ("00:11:22:33:44:55", "1", "not permanent"),
        ("00:11:22:33:44:55", "3", "not permanent"),
        ("00:11:22:33:44", "0", "not a 6-byte MAC"),
    ])
    func unusableAddressesAreSkipped(_ address: String, _ assign: String, _ reason: String) throws {
        var root = MemoryRoot()
        root.interface("eth0", device: "devices/platform/soc", address: address, assign: assign)
        let survey = HardwareIdentityRules.survey(root)
        #expect(survey.facts.mac == nil)
        #expect(survey.lines.contains { $0.hasPrefix("mac: eth0: skipped") && $0.contains(reason) })
    }

    @Test func missingAddrAssignTypeIsAccepted() throws {
        var root = MemoryRoot()
        root.interface("eth0", device: "devices/platform/soc", address: "00:0a:35:01:02:03", assign: nil)
        #expect(HardwareIdentityRules.survey(root).facts.mac == "000a35010203")
    }

    @Test func tiesAreBrokenByName() throws {
        var root = MemoryRoot()
        root.interface("eth1", device: "devices/platform/b", address: "00:0a:35:00:00:01")
        root.interface("end0", device: "devices/platform/a", address: "00:0a:35:00:00:02")
        #expect(try self.derive(root, "{mac}").name == "000a35000002")
    }

    @Test func identitySourcesOrderPicksTheId() throws {
        var root = MemoryRoot()
        root.file(HardwareIdentityRules.deviceTreeSerial, "10000000abcdef12\0")
        root.interface("eth0", device: "devices/platform/scb", address: "dc:a6:32:12:34:56")
        root.file(HardwareIdentityRules.machineIdFile, "8F3E2A1B4C5D6E7F8091A2B3C4D5E6F7\n")
        root.file(HardwareIdentityRules.hostnameFile, "raspberrypi\n")
        #expect(try self.derive(root).name == "10000000abcdef12")
        #expect(try self.derive(root, sources: [.mac, .serial]).name == "dca632123456")
        #expect(try self.derive(root, sources: [.machineId]).name == "8f3e2a1b4c5d6e7f8091a2b3c4d5e6f7")
        #expect(try self.derive(root, "{hostname}-{{{mac}}}").name == "raspberrypi-{dca632123456}")
        let hostnameFirst = try self.derive(root, "node-{id}", sources: [.hostname, .serial])
        #expect(hostnameFirst.name == "node-raspberrypi")
        #expect(hostnameFirst.source == .hostname)
    }

    @Test func derivationIsDeterministic() throws {
        var root = MemoryRoot()
        root.interface("wlan0", device: "devices/platform/mmc", address: "dc:a6:32:00:00:02", wireless: true)
        root.interface("eth0", device: "devices/platform/scb", address: "dc:a6:32:00:00:03")
        let first = try self.derive(root, "pi-{mac}")
        for _ in 0..<5 { #expect(try self.derive(root, "pi-{mac}") == first) }
    }

    @Test func missingPlaceholderNamesTheSourceAndWhatWasTried() {
        var root = MemoryRoot()
        root.file(HardwareIdentityRules.cpuinfo, "processor\t: 0\n")
        root.file(HardwareIdentityRules.machineIdFile, "0123456789abcdef0123456789abcdef\n")
        do {
            _ = try self.derive(root, "pi-{serial}")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .identityUnavailable)
            #expect(error.message.contains("{serial}"))
            #expect(error.message.contains("board serial"))
            #expect(error.message.contains("sys/firmware/devicetree/base/serial-number (not found)"))
            #expect(error.message.contains("proc/cpuinfo (no Serial line)"))
        }
    }

    @Test func noSourceForIdListsEverySourceTried() {
        let root = MemoryRoot()
        do {
            _ = try self.derive(root)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .identityUnavailable)
            for source in ["serial (", "mac (", "machine_id ("] { #expect(error.message.contains(source)) }
        }
    }

    @Test func invalidNamesAreRefused() throws {
        var root = MemoryRoot()
        root.file(HardwareIdentityRules.hostnameFile, "pi\n")
        #expect(throws: AgentError.self) { try self.derive(root, "   ") }
        #expect(throws: AgentError.self) { try self.derive(root, String(repeating: "x", count: 254) + "-{hostname}") }
        #expect(try self.derive(root, String(repeating: "x", count: 252) + "-{hostname}").name.count == 255)
        #expect(try self.derive(root, "  {hostname}  ").name == "pi")
    }

    @Test func templatesParse() throws {
        #expect(try NameTemplate(parsing: "pi-{mac}").parts == [.literal("pi-"), .placeholder(.mac)])
        #expect(try NameTemplate(parsing: "{{x}}").parts == [.literal("{x}")])
        #expect(throws: NameTemplate.ParseError.self) { try NameTemplate(parsing: "{serail}") }
        #expect(throws: NameTemplate.ParseError.self) { try NameTemplate(parsing: "pi-{mac") }
        #expect(throws: NameTemplate.ParseError.self) { try NameTemplate(parsing: "pi}") }
        do {
            _ = try NameTemplate(parsing: "{serail}")
        } catch {
            #expect(error.unknownPlaceholder == "serail")
        }
    }

    @Test func resolvedPathFollowsLinksInsideTheRoot() throws {
        var root = MemoryRoot()
        root.link("sys/class/net/eth0", "../../devices/platform/scb/net/eth0")
        root.link("abs", "/etc/real")
        root.file("sys/devices/platform/scb/net/eth0/address", "x")
        root.file("etc/real/file", "y")
        #expect(try root.resolvedPath("sys/class/net/eth0") == "sys/devices/platform/scb/net/eth0")
        #expect(try root.resolvedPath("abs/file") == "etc/real/file")
        #expect(try root.resolvedPath("../../etc/real") == "etc/real")
    }
}
