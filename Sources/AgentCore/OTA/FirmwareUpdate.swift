import TBChecksum
import TBJSON

/// What a verified firmware package must be before anything is replaced: a tb-agent binary for this board's
/// architecture that runs and says it is the version announced. Pure: the runtime reads the file's first bytes and
/// runs `--version` (`Subprocess`), this type decides.
public enum FirmwareImage {
    /// ELF `e_machine` of the architecture this agent was built for.
    public static var hostMachine: UInt16 {
        #if arch(x86_64)
        return 62
        #elseif arch(arm64)
        return 183
        #elseif arch(arm)
        return 40
        #elseif arch(i386)
        return 3
        #elseif arch(riscv64)
        return 243
        #else
        return 0
        #endif
    }

    public static func machineName(_ machine: UInt16) -> String {
        switch machine {
        case 3: return "i386"
        case 40: return "32-bit ARM (armhf)"
        case 62: return "x86-64 (amd64)"
        case 183: return "aarch64 (arm64)"
        case 243: return "RISC-V"
        default: return "machine \(machine)"
        }
    }

    /// The Debian architecture of this build (`dpkg --print-architecture` on the boards it runs on).
    public static var hostDebianArchitecture: String {
        #if arch(x86_64)
        return "amd64"
        #elseif arch(arm64)
        return "arm64"
        #elseif arch(arm)
        return "armhf"
        #elseif arch(i386)
        return "i386"
        #elseif arch(riscv64)
        return "riscv64"
        #else
        return "unknown"
        #endif
    }

    /// The first bytes of a file that this type needs (the ELF header).
    public static let headerLength = 64

    /// What a firmware package is: a program, or a Debian package (an `ar` archive).
    public enum Format: String, Sendable, Equatable {
        case program
        case debian
    }

    public static func format(_ header: [UInt8]) -> Format {
        header.starts(with: Array("!<arch>\n".utf8)) ? .debian : .program
    }

    /// Why `header` (the program's first bytes) is not an executable for this board, or nil.
    public static func headerProblem(_ header: [UInt8], package: OTAPackage) -> String? {
        let elf: [UInt8] = [0x7F, 0x45, 0x4C, 0x46]
        guard header.count >= 20, header.starts(with: elf) else {
            return "\(package) is not a program (no ELF header) nor a Debian package: a firmware package for this agent is a tb-agent .deb or the tb-agent binary built for \(Self.machineName(Self.hostMachine)); upload one of those"
        }
        let machine = UInt16(header[18]) | UInt16(header[19]) << 8
        guard header[5] == 1, machine == Self.hostMachine else {
            return "\(package) is a program for \(Self.machineName(machine)), but this board runs \(Self.machineName(Self.hostMachine)): assign the \(Self.machineName(Self.hostMachine)) build to this device (a device profile per architecture keeps them apart)"
        }
        guard header[4] == (MemoryLayout<Int>.size == 8 ? 2 : 1) else {
            return "\(package) is a \(header[4] == 1 ? 32 : 64)-bit program; this board runs \(MemoryLayout<Int>.size * 8)-bit ones: assign the \(Self.machineName(Self.hostMachine)) build"
        }
        return nil
    }

    /// The agent's path inside its Debian package.
    public static let debianBinaryPath = "./usr/bin/tb-agent"

    /// The fields `dpkg-deb --field PACKAGE Package Version Architecture` printed ("Name: value" a line).
    public static func debianFields(_ output: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for line in String(decoding: output, as: UTF8.self).split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":"), line.first != " " else { continue }
            let name = line[..<colon].lowercased()
            guard fields[name] == nil, fields.count < 16 else { continue }
            fields[name] = String(line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
        }
        return fields
    }

    /// Why a Debian package, by the fields of its control file, is not a tb-agent release for this board and the
    /// version announced, or nil. Its Debian version is the agent's (`1.2.0`) or that with a suffix that tells
    /// builds apart (`1.2.0+deb13`, `1.2.0-1`); the version in ThingsBoard is the agent's, which it reports back
    /// as `current_fw_version` once installed.
    public static func debianProblem(fields output: [UInt8], exited: String, succeeded: Bool, package: OTAPackage) -> String? {
        guard succeeded else {
            let said = String(decoding: output.prefix(300), as: UTF8.self).split(separator: "\n").last.map { ": \($0)" } ?? ""
            return "\(package) is not a readable Debian package (dpkg-deb ended with \(exited)\(said)): upload the .deb again, or the tb-agent binary"
        }
        let fields = Self.debianFields(output)
        guard let name = fields["package"], let version = fields["version"], let architecture = fields["architecture"] else {
            return "\(package) is a Debian package without Package, Version and Architecture fields: upload a tb-agent .deb built by scripts/package-deb.sh"
        }
        guard name == "tb-agent" else {
            return "\(package) is the Debian package \(name), not tb-agent: a firmware package is a tb-agent release; ship other software as a software package ([ota.software] command)"
        }
        guard architecture == Self.hostDebianArchitecture else {
            return "\(package) is a .deb for \(architecture), but this board is \(Self.hostDebianArchitecture): assign the \(Self.hostDebianArchitecture) package to this device (a device profile per architecture keeps them apart)"
        }
        let rest = version.hasPrefix(package.version) ? version.dropFirst(package.version.count) : nil
        guard let rest, rest.first.map({ "+-~".contains($0) }) ?? true else {
            let upstream = version.prefix { !"+-~".contains($0) }
            return "\(package) holds tb-agent \(version), but its version in ThingsBoard is \(package.version): upload it again with the agent's version \(upstream) (the one it will report)"
        }
        return nil
    }

    /// The version `tb-agent --version` printed: its first line is the version alone ("1.2.3"), the next one the
    /// libgpiod API it was built for ("libgpiod 2.2.1 (v2 API)"); nil when the output is not that.
    public static func reportedVersion(_ output: [UInt8]) -> String? {
        let lines = String(decoding: output, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 2, let version = lines.first, let first = version.first, first.isNumber,
              !version.contains(" "), version.count <= 40, lines[1].hasPrefix("libgpiod") else { return nil }
        return String(version)
    }

    /// Why the package's `--version` answer does not allow installing it, or nil.
    public static func versionProblem(output: [UInt8], exited: String, succeeded: Bool, package: OTAPackage) -> String? {
        guard succeeded else {
            let said = String(decoding: output.prefix(200), as: UTF8.self).split(separator: "\n").first.map { ": \($0)" } ?? ""
            return "\(package) does not run on this board (`--version` ended with \(exited)\(said)): it was built for another system (glibc, libgpiod) or is damaged; assign a build for this board's OS"
        }
        guard let version = Self.reportedVersion(output) else {
            return "\(package) is not tb-agent (`--version` printed \"\(String(decoding: output.prefix(80), as: UTF8.self))\"): upload a tb-agent binary"
        }
        guard version == package.version else {
            return "\(package) says it is tb-agent \(version), not \(package.version): the package's version in ThingsBoard does not match the binary; upload it again with version \(version)"
        }
        return nil
    }
}

/// The files the agent and the root step (`tb-agent apply-update`) exchange in `state_dir/ota/`, as JSON:
///
/// - `ready` (the agent, an `UpdateTicket`): a verified package that passed `FirmwareImage`'s checks, to be installed.
/// - `trial` (the root step, the same ticket): the new version is installed and on trial until `confirmed` or the
///   window ends.
/// - `confirmed` (the new agent, `{"version": …}`): it stayed online for `confirm_after`.
/// - `outcome` (the root step): UPDATED, or FAILED with why it rolled back; the agent reports it.
public struct UpdateTicket: Sendable, Equatable {
    public var package: OTAPackage
    /// The version it replaces.
    public var from: String

    public init(package: OTAPackage, from: String) {
        self.package = package
        self.from = from
    }

    public var json: JSONValue {
        .object([("package", self.package.json(durableBytes: self.package.size, verified: true)), ("from", .string(self.from))])
    }

    public init?(json: JSONValue) {
        guard let packageJSON = json["package"], let (package, _, _) = OTAPackage.parse(packageJSON),
              let from = json["from"]?.stringValue else { return nil }
        self.init(package: package, from: from)
    }
}

public struct UpdateOutcome: Sendable, Equatable {
    public enum State: String, Sendable { case updated = "UPDATED", failed = "FAILED" }
    public var state: State
    public var package: OTAPackage
    /// Why it failed (FAILED only).
    public var error: String?

    public init(state: State, package: OTAPackage, error: String? = nil) {
        self.state = state
        self.package = package
        self.error = error
    }

    public var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("state", .string(self.state.rawValue)), ("package", self.package.json(durableBytes: self.package.size, verified: true)),
        ]
        if let error { members.append(("error", .string(error))) }
        return .object(members)
    }

    public init?(json: JSONValue) {
        guard let state = json["state"]?.stringValue.flatMap(State.init(rawValue:)), let packageJSON = json["package"],
              let (package, _, _) = OTAPackage.parse(packageJSON) else { return nil }
        self.init(state: state, package: package, error: json["error"]?.stringValue)
    }
}
