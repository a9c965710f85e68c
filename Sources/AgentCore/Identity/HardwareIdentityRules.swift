/// The rules that turn a system tree into a device name (README, "Hardware identity"). Pure: every file is read
/// through a `SystemRoot`, so the same rules run on a board, on fixture trees and on the simulated board.
public enum HardwareIdentityRules {
    public static let deviceTreeSerial = "sys/firmware/devicetree/base/serial-number"
    public static let deviceTreeModel = "sys/firmware/devicetree/base/model"
    public static let cpuinfo = "proc/cpuinfo"
    public static let machineIdFile = "etc/machine-id"
    public static let hostnameFile = "etc/hostname"
    public static let dmiProductName = "sys/class/dmi/id/product_name"
    public static let netClass = "sys/class/net"

    /// Derives the device name for `settings` from the tree at `root`.
    /// - Throws: `AgentError.identityUnavailable` naming the missing source and what was tried, or
    ///   `.invalidConfiguration` for a template that does not parse.
    public static func derive(_ settings: DeviceSettings, root: any SystemRoot) throws(AgentError) -> DerivedIdentity {
        let template: NameTemplate
        do {
            template = try NameTemplate(parsing: settings.nameTemplate)
        } catch {
            throw AgentError(.invalidConfiguration, "[device] name_template \"\(settings.nameTemplate)\": \(error.message)")
        }
        let survey = self.survey(root)
        var lines = ["sysroot: \(root.location)"] + survey.lines
        let facts = survey.facts
        let order = settings.identitySources.isEmpty ? DeviceSettings.defaultIdentitySources : settings.identitySources
        let orderText = order.map(\.rawValue).joined(separator: ", ")

        var idSource: IdentitySource? = nil
        if template.placeholders.contains(.id) {
            idSource = order.first { facts.value(of: $0) != nil }
            if let idSource {
                lines.append("{id}: \(idSource.rawValue), the first available of \(orderText)")
            } else {
                let tried = order.map { "\($0.rawValue) (\(survey.tried[$0, default: "not found"]))" }
                    .joined(separator: "; ")
                throw AgentError(
                    .identityUnavailable,
                    "name_template \"\(settings.nameTemplate)\" uses {id}, but none of its sources has a value under "
                        + "sysroot \(root.location): tried \(tried). Set [device] sysroot to the board's root, add "
                        + "hostname to [device] identity_sources, or use a literal name_template")
            }
        }

        var rendered = ""
        for part in template.parts {
            switch part {
            case .literal(let text):
                rendered += text
            case .placeholder(let placeholder):
                guard let source = placeholder.source ?? idSource else { continue }
                guard let value = facts.value(of: source) else {
                    throw AgentError(
                        .identityUnavailable,
                        "name_template \"\(settings.nameTemplate)\" uses {\(placeholder.rawValue)}, but this board has "
                            + "no \(source.displayName) under sysroot \(root.location): tried "
                            + "\(survey.tried[source, default: "nothing"]). Use {id} to fall back to another source "
                            + "(order: \(orderText)); `tb-agent identity --explain` lists every source")
                }
                rendered += value
            }
        }
        let name = rendered.trimmingWhitespace()
        if let problem = DeviceName.problem(with: name) {
            throw AgentError(
                .identityUnavailable,
                "name_template \"\(settings.nameTemplate)\" gives \"\(name)\", which is not a valid ThingsBoard device "
                    + "name: \(problem). Change [device] name_template")
        }
        let source = idSource ?? template.placeholders.lazy.compactMap(\.source).first
        lines.append("template: \"\(settings.nameTemplate)\" gives \"\(name)\"")
        return DerivedIdentity(name: name, source: source, facts: facts, explanation: lines)
    }

    /// What every source gives, with one explanation line per file or interface looked at.
    public struct Survey: Sendable {
        public var facts = HardwareFacts()
        public var lines: [String] = []
        /// For each source, a short summary of what was tried, for error messages.
        public var tried: [IdentitySource: String] = [:]
    }

    /// Reads every source (used or not), so that `--explain` can show all of them.
    public static func survey(_ root: any SystemRoot) -> Survey {
        var survey = Survey()
        self.readSerial(root, into: &survey)
        self.readMAC(root, into: &survey)
        self.readMachineId(root, into: &survey)
        self.readHostname(root, into: &survey)
        self.readModel(root, into: &survey)
        return survey
    }

    // MARK: serial

    static func readSerial(_ root: any SystemRoot, into survey: inout Survey) {
        var tried: [String] = []
        switch self.read(root, self.deviceTreeSerial) {
        case .failure(let reason):
            survey.lines.append("serial: \(self.deviceTreeSerial): skipped, \(reason)")
            tried.append("\(self.deviceTreeSerial) (\(reason))")
        case .success(let text):
            let serial = self.normalizeSerial(text)
            if let problem = self.serialProblem(serial) {
                survey.lines.append("serial: \(self.deviceTreeSerial): skipped, \(problem)")
                tried.append("\(self.deviceTreeSerial) (\(problem))")
            } else {
                survey.facts.serial = serial
                survey.lines.append("serial: \(self.deviceTreeSerial): found \"\(serial)\", used")
                return
            }
        }
        switch self.read(root, self.cpuinfo) {
        case .failure(let reason):
            survey.lines.append("serial: \(self.cpuinfo): skipped, \(reason)")
            tried.append("\(self.cpuinfo) (\(reason))")
        case .success(let text):
            guard let field = self.cpuinfoField(text, "Serial") else {
                survey.lines.append("serial: \(self.cpuinfo): skipped, no Serial line")
                tried.append("\(self.cpuinfo) (no Serial line)")
                break
            }
            let serial = self.normalizeSerial(field)
            if let problem = self.serialProblem(serial) {
                survey.lines.append("serial: \(self.cpuinfo) Serial: skipped, \(problem)")
                tried.append("\(self.cpuinfo) Serial (\(problem))")
            } else {
                survey.facts.serial = serial
                survey.lines.append("serial: \(self.cpuinfo) Serial: found \"\(serial)\", used")
                return
            }
        }
        survey.tried[.serial] = tried.joined(separator: ", ")
    }

    /// Lowercase, without whitespace or NULs; leading zeros are kept.
    public static func normalizeSerial(_ text: String) -> String {
        String(text.unicodeScalars.filter { $0 != "\0" && !$0.properties.isWhitespace }.map(Character.init))
            .lowercased()
    }

    static func serialProblem(_ serial: String) -> String? {
        if serial.isEmpty { return "empty" }
        if serial.allSatisfy({ $0 == "0" }) { return "all zeros (\"\(serial)\"), which means no serial" }
        return nil
    }

    /// The value of the first `key : value` line of `/proc/cpuinfo` whose key is exactly `key` (case matters:
    /// x86's `model` is a number, a Raspberry Pi's `Model` is the board).
    public static func cpuinfoField(_ text: String, _ key: String) -> String? {
        for line in text.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[..<colon].trimmingWhitespace() == key {
                let value = line[line.index(after: colon)...].trimmingWhitespace()
                return value.isEmpty ? nil : value
            }
        }
        return nil
    }

    // MARK: MAC

    struct Interface {
        let name: String
        let mac: String
        let wireless: Bool
    }

    static func readMAC(_ root: any SystemRoot, into survey: inout Survey) {
        let names: [String]
        do {
            names = try root.listDirectory(self.netClass)
        } catch {
            let reason = self.describe(error)
            survey.lines.append("mac: \(self.netClass): skipped, \(reason)")
            survey.tried[.mac] = "\(self.netClass) (\(reason))"
            return
        }
        var candidates: [Interface] = []
        var tried: [String] = []
        for name in names.sorted() {
            let (interface, reason) = self.examineInterface(root, name)
            if let interface {
                candidates.append(interface)
            } else {
                survey.lines.append("mac: \(name): skipped, \(reason)")
                tried.append("\(name) (\(reason))")
            }
        }
        // Wired before wireless: a USB Wi-Fi dongle moves between boards, the Ethernet port does not.
        candidates.sort { ($0.wireless ? 1 : 0, $0.name) < ($1.wireless ? 1 : 0, $1.name) }
        for (index, candidate) in candidates.enumerated() {
            let kind = candidate.wireless ? "wireless" : "wired"
            if index == 0 {
                survey.facts.mac = candidate.mac
                survey.facts.macInterface = candidate.name
                survey.lines.append(
                    "mac: \(candidate.name): found \"\(candidate.mac)\" (\(kind), permanent, globally administered), used")
            } else {
                survey.lines.append(
                    "mac: \(candidate.name): found \"\(candidate.mac)\" (\(kind)), not used: \(candidates[0].name) comes first "
                        + "(wired before wireless, then by name)")
            }
        }
        if candidates.isEmpty {
            survey.tried[.mac] = tried.isEmpty ? "\(self.netClass) (no interfaces)" : "\(self.netClass): " + tried.joined(separator: ", ")
        }
    }

    /// The interface's usable MAC, or why it has none.
    static func examineInterface(_ root: any SystemRoot, _ name: String) -> (Interface?, String) {
        if name == "lo" { return (nil, "loopback") }
        let base = SystemPath.join(self.netClass, name)
        if let resolved = try? root.resolvedPath(base) {
            let parts = SystemPath.components(resolved)
            if zip(parts, parts.dropFirst()).contains(where: { $0 == "devices" && $1 == "virtual" }) {
                return (nil, "virtual interface (\(resolved)): bridges, docker0 and veth pairs get made-up addresses")
            }
        }
        if case .success(let type) = self.read(root, SystemPath.join(base, "type")),
            let value = Int(type.trimmingWhitespace()), value != 1
        {
            return (nil, "not an Ethernet-type interface (type \(value))")
        }
        if case .success(let text) = self.read(root, SystemPath.join(base, "addr_assign_type")) {
            let value = text.trimmingWhitespace()
            if value != "0" {
                let meaning = ["1": "random", "2": "stolen from another device", "3": "set by software"][value] ?? "unknown"
                return (nil, "address is not permanent (addr_assign_type \(value): \(meaning))")
            }
        }
        let address: String
        switch self.read(root, SystemPath.join(base, "address")) {
        case .failure(let reason): return (nil, "address \(reason)")
        case .success(let text): address = text.trimmingWhitespace()
        }
        guard let octets = self.parseMAC(address) else {
            return (nil, "address \"\(address)\" is not a 6-byte MAC")
        }
        let hex = octets.map { self.hexByte($0) }.joined()
        if octets.allSatisfy({ $0 == 0 }) { return (nil, "address is all zeros") }
        if octets[0] & 0x01 != 0 { return (nil, "\"\(hex)\" is a multicast address") }
        if octets[0] & 0x02 != 0 {
            return (nil, "\"\(hex)\" is locally administered (made up by software, not burnt in)")
        }
        let entries = (try? root.listDirectory(base)) ?? []
        let wireless = entries.contains("wireless") || entries.contains("phy80211")
        return (Interface(name: name, mac: hex, wireless: wireless), "")
    }

    /// `aa:bb:cc:dd:ee:ff` (or with `-`) as 6 bytes.
    public static func parseMAC(_ text: String) -> [UInt8]? {
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "-" })
        guard parts.count == 6 else { return nil }
        var octets: [UInt8] = []
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else { return nil }
            octets.append(byte)
        }
        return octets
    }

    static func hexByte(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]])
    }

    // MARK: machine-id, host name, model

    static func readMachineId(_ root: any SystemRoot, into survey: inout Survey) {
        let path = self.machineIdFile
        switch self.read(root, path) {
        case .failure(let reason):
            survey.lines.append("machine_id: \(path): skipped, \(reason)")
            survey.tried[.machineId] = "\(path) (\(reason))"
        case .success(let text):
            let id = text.trimmingWhitespace().lowercased()
            let problem: String?
            if id.isEmpty || id == "uninitialized" {
                problem = "not yet initialized (systemd writes it on first boot)"
            } else if id.count != 32 || !id.allSatisfy(\.isHexDigit) {
                problem = "\"\(id)\" is not 32 hex digits"
            } else if id.allSatisfy({ $0 == "0" }) {
                problem = "all zeros"
            } else {
                problem = nil
            }
            if let problem {
                survey.lines.append("machine_id: \(path): skipped, \(problem)")
                survey.tried[.machineId] = "\(path) (\(problem))"
            } else {
                survey.facts.machineId = id
                survey.lines.append("machine_id: \(path): found \"\(id)\"")
            }
        }
    }

    static func readHostname(_ root: any SystemRoot, into survey: inout Survey) {
        let path = self.hostnameFile
        switch self.read(root, path) {
        case .failure(let reason):
            survey.lines.append("hostname: \(path): skipped, \(reason)")
            survey.tried[.hostname] = "\(path) (\(reason))"
        case .success(let text):
            let name = text.split(whereSeparator: \.isNewline).map { $0.trimmingWhitespace() }
                .first { !$0.isEmpty && !$0.hasPrefix("#") }
            if let name {
                survey.facts.hostname = name
                survey.lines.append("hostname: \(path): found \"\(name)\"")
            } else {
                survey.lines.append("hostname: \(path): skipped, empty")
                survey.tried[.hostname] = "\(path) (empty)"
            }
        }
    }

    static func readModel(_ root: any SystemRoot, into survey: inout Survey) {
        if case .success(let text) = self.read(root, self.deviceTreeModel) {
            let model = text.replacingNUL().trimmingWhitespace()
            if !model.isEmpty {
                survey.facts.model = model
                survey.lines.append("model: \(self.deviceTreeModel): \"\(model)\"")
                return
            }
        }
        if case .success(let text) = self.read(root, self.cpuinfo), let model = self.cpuinfoField(text, "Model") {
            survey.facts.model = model
            survey.lines.append("model: \(self.cpuinfo) Model: \"\(model)\"")
            return
        }
        if case .success(let text) = self.read(root, self.dmiProductName) {
            let model = text.replacingNUL().trimmingWhitespace()
            if !model.isEmpty {
                survey.facts.model = model
                survey.lines.append("model: \(self.dmiProductName): \"\(model)\"")
                return
            }
        }
        survey.lines.append(
            "model: unknown (no \(self.deviceTreeModel), no Model line in \(self.cpuinfo), no \(self.dmiProductName))")
    }

    // MARK: helpers

    static func read(_ root: any SystemRoot, _ path: String) -> Result<String, ReadFailure> {
        do {
            let bytes = try root.readFile(path)
            return .success(String(decoding: bytes, as: UTF8.self))
        } catch {
            return .failure(ReadFailure(text: self.describe(error)))
        }
    }

    struct ReadFailure: Error, CustomStringConvertible {
        let text: String
        var description: String { self.text }
    }

    static func describe(_ error: SystemRootError) -> String {
        switch error.reason {
        case .notFound: return "not found"
        case .notADirectory: return "not a directory"
        case .permissionDenied: return "permission denied"
        case .tooManyLinks: return "too many symbolic links"
        case .other(let text): return text
        }
    }
}

fileprivate extension StringProtocol {
    /// The text without leading and trailing whitespace (and newlines).
    func trimmingWhitespace() -> String {
        guard let first = self.firstIndex(where: { !$0.isWhitespace }),
            let last = self.lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(self[first...last])
    }

    /// The text with NUL characters removed (device-tree strings end in one).
    func replacingNUL() -> String {
        String(self.unicodeScalars.filter { $0 != "\0" }.map(Character.init))
    }
}
